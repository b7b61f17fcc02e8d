"""A circuit breaker per backend server, so an outage costs one fast failure per call.

Follows the pattern as described by M. Nygard ("Release It!", 2007) and M. Fowler
("CircuitBreaker", 2014): *closed* counts consecutive failures; after ``failure_threshold`` it
*opens* and every call fails at once, without touching the network, so a dead Redis costs
microseconds per request instead of a connect timeout. After ``recovery_timeout`` one call is let
through as a *half-open* probe: its success closes the breaker, its failure re-opens it for
another ``recovery_timeout``. Only the probe goes through while half-open, so a recovering server
is not hit by every waiting request at once.

A probe can also end with no verdict on the server: the call raised before it reached the
network (a value that cannot be serialized), a caller cancelled it, or a multi-key call was
granted it and gave up. Such a call gives the probe back with :meth:`release`; and a probe
that has not reported within ``recovery_timeout`` is deemed lost and another is let through,
so no lost probe can keep a recovered server refused for the life of the process.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import ConfigurationError

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(enum.IntEnum):
    """Exported as a number in metrics: 0 closed, 1 half-open, 2 open."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Thread-safe breaker; ``allow()`` before a call, then ``success()`` or ``failure()``."""

    __slots__ = (
        "_clock", "_failures", "_lock", "_opened_at", "_probe_started", "_probing", "_state",
        "failure_threshold", "name", "opened_count", "recovery_timeout", "rejected_count",
    )  # fmt: skip

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        recovery_timeout: float = 5.0,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if type(failure_threshold) is not int or failure_threshold < 1:
            raise ConfigurationError(
                f"failure_threshold must be a positive int, got {failure_threshold!r}",
                key="breaker_failures",
            )
        if not recovery_timeout > 0:
            raise ConfigurationError(
                f"recovery_timeout must be positive seconds, got {recovery_timeout!r}",
                key="breaker_recovery",
            )
        self.failure_threshold = failure_threshold
        self.recovery_timeout = float(recovery_timeout)
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._probe_started = 0.0
        #: Times the breaker opened, and calls refused while open (for stats and metrics).
        self.opened_count = 0
        self.rejected_count = 0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._current()

    def _current(self) -> BreakerState:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.recovery_timeout
        ):
            self._state = BreakerState.HALF_OPEN
            self._probing = False
        elif (
            self._probing
            and self._state is BreakerState.HALF_OPEN
            and self._clock() - self._probe_started >= self.recovery_timeout
        ):
            self._probing = False  # lost: it never reported (see the module docstring)
        return self._state

    def _after_fork(self) -> None:
        """A forked child's counts are its own (see :mod:`cachekit.forking`); the state stays."""
        self._lock = threading.Lock()
        self.opened_count = self.rejected_count = 0

    def allow(self) -> bool:
        """Whether a call may go to the server now (closed, or the single half-open probe)."""
        if self._state is BreakerState.CLOSED:  # the common case, without the lock
            return True
        return self._admit(True)

    def allow_uncounted(self) -> bool:
        """:meth:`allow` for a read of the cache's own (a ``get_stats()``), not a caller's
        call: a refusal is not counted in :attr:`rejected_count`."""
        if self._state is BreakerState.CLOSED:
            return True
        return self._admit(False)

    def _admit(self, count: bool) -> bool:
        with self._lock:
            state = self._current()
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN and not self._probing:
                self._probing = True
                self._probe_started = self._clock()
                return True
            if count:
                self.rejected_count += 1
            return False

    def success(self) -> None:
        if self._state is BreakerState.CLOSED and not self._failures:
            return
        with self._lock:
            self._state = BreakerState.CLOSED
            self._failures = 0
            self._probing = False

    def release(self) -> None:
        """Give back a call allowed by :meth:`allow` that ended with no verdict on the server
        (it raised before reaching it, or was cancelled): a half-open probe may go again."""
        if self._state is BreakerState.CLOSED:
            return
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._probing = False

    def failure(self) -> None:
        with self._lock:
            if self._state is BreakerState.HALF_OPEN or (
                self._state is BreakerState.CLOSED and self._failures + 1 >= self.failure_threshold
            ):
                self._state = BreakerState.OPEN
                self._opened_at = self._clock()
                self._probing = False
                self.opened_count += 1
                self._failures = 0
            elif self._state is BreakerState.CLOSED:
                self._failures += 1

    def retry_in(self) -> float:
        """Seconds until the next probe is allowed (0 when not open)."""
        with self._lock:
            if self._current() is not BreakerState.OPEN:
                return 0.0
            return max(self.recovery_timeout - (self._clock() - self._opened_at), 0.0)

    def snapshot(self) -> dict[str, Any]:
        """JSON-friendly state for ``CacheStats.extra``."""
        return {
            "breaker_state": int(self.state),
            "breaker_opened_total": self.opened_count,
            "breaker_rejected_total": self.rejected_count,
        }
