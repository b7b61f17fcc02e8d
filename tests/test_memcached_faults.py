"""Outages of real memcached processes: fail-closed errors, fail-open misses, the per-server
circuit breaker, failover along the ring, and recovery after a restart on the same port."""

from __future__ import annotations

import logging
import time

import pytest

from cachekit.errors import BackendUnavailable
from cachekit.providers.memcached import MemcachedCache
from cachekit.resilience import BreakerState
from cachekit.testing.servers import MemcachedServer


def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_fail_closed_raises_backend_unavailable(fresh_memcached_server: MemcachedServer) -> None:
    server = fresh_memcached_server
    with MemcachedCache([(server.host, server.port)], timeout=0.5) as cache:
        cache.set("k", 1)
        server.kill()
        for call in (
            lambda: cache.get("k"),
            lambda: cache.set("k", 2),
            lambda: cache.get_many(["k"]),
            lambda: cache.delete("k"),
            lambda: cache.incr("n"),
            lambda: cache.add("a", 1),
        ):
            with pytest.raises(BackendUnavailable) as info:
                call()
            assert info.value.__cause__ is not None or "circuit open" in str(info.value)


def test_fail_open_misses_drops_and_counts(
    fresh_memcached_server: MemcachedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = fresh_memcached_server
    with MemcachedCache([(server.host, server.port)], fail_open=True, timeout=0.5) as cache:
        cache.set("k", 1)
        server.kill()
        with caplog.at_level(logging.WARNING, logger="cachekit.backend"):
            assert cache.get("k", "dflt") == "dflt"
            cache.set("k", 2)
            assert cache.get_many(["k", "j"]) == {}
            assert cache.set_many({"a": 1}) == ["a"]  # dropped, and said so
            assert cache.delete("k") is False
            assert cache.exists("k") is False
            assert cache.ttl("k") == 0.0
            assert cache.touch("k") is False
            assert cache.add("a", 1) is False  # nothing stored: never claims the key
            assert cache.get_or_set("g", lambda: 7) == 7
            with pytest.raises(BackendUnavailable):
                cache.incr("n")  # no invented counter value
            cache.clear()
        stats = cache.get_stats()
        assert stats.extra["fail_open_errors_total"] >= 12
        assert stats.extra["fail_open_get_errors_total"] >= 1
        assert stats.extra["nodes_up"] == 0
        warnings = [r for r in caplog.records if "failing open" in r.getMessage()]
        assert len(warnings) == 1  # rate-limited


def test_breaker_opens_fails_fast_and_recovers_on_the_same_port(
    fresh_memcached_server: MemcachedServer,
) -> None:
    server = fresh_memcached_server
    with MemcachedCache(
        [(server.host, server.port)], breaker_failures=2, breaker_recovery=0.5, timeout=0.5
    ) as cache:
        cache.set("k", "before")
        server.kill()
        for _ in range(2):
            with pytest.raises(BackendUnavailable):
                cache.get("k")
        (node,) = cache.get_stats().extra["nodes"].values()
        assert node["breaker_state"] == 2  # open
        start = time.perf_counter()
        for _ in range(100):
            with pytest.raises(BackendUnavailable, match="circuit open"):
                cache.get("k")
        assert time.perf_counter() - start < 0.1  # no connect attempt per call
        server.start()  # same port; memcached keeps nothing across a restart

        def probe() -> bool:
            try:
                return bool(cache.get("k", "miss") == "miss")
            except BackendUnavailable:
                return False  # still open, or the probe found it down

        wait_for(probe)
        cache.set("k", "after")
        assert cache.get("k") == "after"
        (node,) = cache.get_stats().extra["nodes"].values()
        assert node["breaker_state"] == 0
        assert node["breaker_opened_total"] == 1


def test_a_dead_node_keys_fail_over_to_the_next_node(
    memcached_cluster: list[MemcachedServer],
) -> None:
    servers = [(s.host, s.port) for s in memcached_cluster]
    with MemcachedCache(
        servers, breaker_failures=1, breaker_recovery=0.5, timeout=0.5, prefix="fo:"
    ) as cache:
        keys = [f"k{i}" for i in range(200)]
        cache.set_many(dict.fromkeys(keys, "v"))
        dead = memcached_cluster[0]
        dead_address = f"{dead.host}:{dead.port}"
        on_dead = [k for k in keys if cache._route(cache._key(k)).address == dead_address]
        assert on_dead
        dead.kill()
        with pytest.raises(BackendUnavailable):  # the failure that opens its breaker
            cache.get_many(on_dead)
        # While open, its keys go to the next node on the ring: misses, then stored there.
        assert cache.get_many(on_dead) == {}
        cache.set_many(dict.fromkeys(on_dead, "moved"))
        assert cache.get_many(on_dead) == dict.fromkeys(on_dead, "moved")
        others = [k for k in keys if k not in on_dead]
        assert cache.get_many(others) == dict.fromkeys(others, "v")  # untouched
        stats = cache.get_stats().extra
        assert stats["nodes"][dead_address]["breaker_state"] == 2
        assert stats["nodes_up"] == 2
        dead.start()
        # After recovery the keys map to their own node again (which lost its data).
        wait_for(lambda: cache.get_stats().extra["nodes_up"] == 3)
        cache.set("again", 1)
        assert cache.get("again") == 1


def test_keys_written_before_an_outage_of_another_node_survive(
    memcached_cluster: list[MemcachedServer],
) -> None:
    servers = [(s.host, s.port) for s in memcached_cluster]
    with MemcachedCache(servers, fail_open=True, timeout=0.5, prefix="keep:") as cache:
        keys = [f"k{i}" for i in range(100)]
        cache.set_many({key: key for key in keys})
        memcached_cluster[1].kill()
        found = cache.get_many(keys)
        # Only the dead node's share is missing; nothing else was lost or raised.
        assert 0 < len(found) < len(keys)
        assert all(found[key] == key for key in found)
        memcached_cluster[1].start()


def test_async_twins_never_block_the_event_loop(fresh_memcached_server: MemcachedServer) -> None:
    """A stalled server (SIGSTOP) holds an ``aget`` for its whole timeout; the loop keeps going."""
    import asyncio

    server = fresh_memcached_server
    with MemcachedCache([(server.host, server.port)], timeout=0.6, fail_open=True) as cache:
        asyncio.run(cache.aset("k", 1))
        with server.stalled():

            async def scenario() -> tuple[object, int]:
                ticks = 0

                async def ticker() -> None:
                    nonlocal ticks
                    while True:
                        await asyncio.sleep(0.01)
                        ticks += 1

                task = asyncio.create_task(ticker())
                value = await cache.aget("k", "fallback")
                task.cancel()
                return value, ticks

            value, ticks = asyncio.run(scenario())
        assert value == "fallback"  # timed out, failed open
        assert ticks >= 20  # ~60 ticks in 0.6 s; a blocked loop would count none


def test_a_stalled_server_times_out_reads_and_writes(
    fresh_memcached_server: MemcachedServer,
) -> None:
    """The kernel timeouts (``memcached_wire.kernel_timeouts``) bound every wait as Python's
    did: a stopped server costs ``timeout`` per attempt, for a reply and for a full socket."""

    server = fresh_memcached_server
    with MemcachedCache(
        [(server.host, server.port)], timeout=0.3, retry_attempts=1, compression="none"
    ) as cache:
        cache.set("k", 1)
        with server.stalled():
            for call in (
                lambda: cache.get("k"),
                lambda: cache.set("k", 2),
                lambda: cache.delete("k"),  # through pymemcache's own code
                # ~20 MB: more than the loopback socket buffers hold, so sendmsg blocks.
                lambda: cache.set_many({f"b{i}": bytes([i]) * 500_000 for i in range(40)}),
            ):
                start = time.perf_counter()
                with pytest.raises(BackendUnavailable, match="timed out"):
                    call()
                assert 0.25 < time.perf_counter() - start < 5.0

        def recovered() -> bool:
            try:
                cache.set("after", 1)
                return bool(cache.get("after") == 1)
            except BackendUnavailable:
                return False

        wait_for(recovered)


def test_a_multi_key_call_runs_the_half_open_probe_it_was_granted(
    memcached_cluster: list[MemcachedServer],
) -> None:
    """Several keys of a half-open node in one get_many ride on its single probe. Asking its
    breaker once per key took the probe with the first key and refused the next (the other
    nodes being open), the call failed, and the granted probe never ran: the node stayed
    half-open, refused, for the life of the process."""
    servers = [(s.host, s.port) for s in memcached_cluster]
    with MemcachedCache(servers, breaker_failures=1, breaker_recovery=0.3, prefix="hp:") as cache:
        keys = [f"k{i}" for i in range(300)]
        cache.set_many(dict.fromkeys(keys, "v"))
        first = cache._nodes[f"{memcached_cluster[0].host}:{memcached_cluster[0].port}"]
        owned = [k for k in keys if cache._route(cache._key(k)) is first][:5]
        assert len(owned) == 5
        first.breaker.failure()
        time.sleep(0.35)
        assert first.breaker.state is BreakerState.HALF_OPEN
        for node in cache._nodes.values():
            if node is not first:
                node.breaker.failure()  # the others open: no fallback for its keys
        assert cache.get_many(owned) == dict.fromkeys(owned, "v")
        assert first.breaker.state is BreakerState.CLOSED
