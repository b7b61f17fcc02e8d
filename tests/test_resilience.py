"""The circuit breaker's state machine and the fail-open policy, with a fake clock."""

from __future__ import annotations

import logging

import pytest

from cachekit import BackendUnavailable, ConfigurationError
from cachekit.resilience import BreakerState, CircuitBreaker, FailOpen
from cachekit.testing import FakeClock


def test_opens_after_consecutive_failures_and_fails_fast() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, recovery_timeout=5, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.success()  # a success resets the count: failures must be consecutive
    for _ in range(3):
        breaker.failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.rejected_count == 1
    assert breaker.retry_in() == pytest.approx(5)


def test_half_open_lets_one_probe_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=2, clock=clock)
    breaker.failure()
    clock.advance(2)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else still fails fast
    breaker.failure()  # the probe failed: open for another period
    assert breaker.state is BreakerState.OPEN
    clock.advance(2)
    assert breaker.allow()
    breaker.success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    assert breaker.retry_in() == 0.0
    assert breaker.snapshot() == {
        "breaker_state": 0,
        "breaker_opened_total": 2,
        "breaker_rejected_total": 1,
    }


@pytest.mark.parametrize(
    ("options", "key"),
    [({"failure_threshold": 0}, "breaker_failures"), ({"recovery_timeout": 0}, "breaker_recovery")],
)
def test_bad_breaker_settings(options: dict[str, float], key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CircuitBreaker(**options)  # type: ignore[arg-type]
    assert info.value.key == key


def test_fail_closed_raises_backend_unavailable_with_the_cause() -> None:
    policy = FailOpen(False, name="c")
    cause = OSError("connection refused")
    with pytest.raises(BackendUnavailable, match="cache 'c': get failed") as info:
        policy.handle("get", cause)
    assert info.value.__cause__ is cause
    already = BackendUnavailable("circuit open")
    with pytest.raises(BackendUnavailable) as info:
        policy.handle("set", already)
    assert info.value is already


def test_fail_open_counts_and_rate_limits_its_warnings(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    policy = FailOpen(True, name="c", log_interval=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="cachekit.backend"):
        for _ in range(5):
            policy.handle("get", OSError("down"))
        clock.advance(11)
        policy.handle("set", OSError("down"))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "1 failed operation(s)" in messages[0]
    assert "5 failed operation(s)" in messages[1]  # the 4 unlogged gets and this set
    snapshot = policy.snapshot()
    assert snapshot["fail_open_errors_total"] == 6
    assert snapshot["fail_open_get_errors_total"] == 5
    assert snapshot["fail_open_set_errors_total"] == 1
    assert snapshot["fail_open_delete_errors_total"] == 0


def test_fail_open_reports_the_common_operations_from_the_start() -> None:
    """A per-operation counter that first appeared at its first failure lost that increment to
    rate(); failing closed, nothing is counted, so nothing is reported per operation."""
    snapshot = FailOpen(True, name="c").snapshot()
    assert snapshot["fail_open_errors_total"] == 0
    for op in ("get", "set", "get_many", "set_many", "delete", "incr"):
        assert snapshot[f"fail_open_{op}_errors_total"] == 0
    assert FailOpen(False, name="c").snapshot() == {"fail_open_errors_total": 0}


def test_a_released_probe_lets_the_next_call_probe() -> None:
    """A probe that ended with no verdict (it raised before reaching the server, or was
    cancelled) gives the probe back instead of leaving the breaker half-open for good."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=2, clock=clock)
    breaker.failure()
    clock.advance(2)
    assert breaker.allow()
    assert not breaker.allow()
    breaker.release()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # the next call is the probe
    breaker.success()
    assert breaker.state is BreakerState.CLOSED
    breaker.release()  # no-op when closed
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_a_probe_that_never_reports_is_deemed_lost_after_the_recovery_timeout() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=2, clock=clock)
    breaker.failure()
    clock.advance(2)
    assert breaker.allow()  # granted, and then never heard from
    clock.advance(1.9)
    assert not breaker.allow()  # still within its time
    clock.advance(0.1)
    assert breaker.allow()  # lost: another call may probe
    assert not breaker.allow()
    breaker.failure()
    assert breaker.state is BreakerState.OPEN
