"""Outages on a real redis-server: kill it, restart it, and check what callers see."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from cachekit.errors import BackendUnavailable, SerializationError
from cachekit.providers.redis import RedisCache
from cachekit.resilience import BreakerState
from cachekit.testing.servers import RedisServer

FAST = {"retries": 0, "socket_connect_timeout": 0.5, "socket_timeout": 0.5}


@pytest.fixture
def make(fresh_redis_server: RedisServer) -> Iterator[Any]:
    made: list[RedisCache] = []

    def make(**options: Any) -> RedisCache:
        cache = RedisCache(fresh_redis_server.url, **{**FAST, **options})
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


def test_fail_closed_raises_with_the_cause_chained(
    make: Any, fresh_redis_server: RedisServer
) -> None:
    cache = make()
    cache.set("k", 1)
    fresh_redis_server.kill()
    for call in (lambda: cache.get("k"), lambda: cache.set("k", 2), lambda: cache.delete("k")):
        with pytest.raises(BackendUnavailable) as info:
            call()
        assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)


def test_fail_open_lets_nothing_escape_and_counts(
    make: Any, fresh_redis_server: RedisServer
) -> None:
    cache = make(fail_open=True, breaker_failures=100)
    cache.set("k", 1)
    fresh_redis_server.kill()
    assert cache.get("k", "miss") == "miss"
    assert cache.get_many(["k"]) == {}
    cache.set("k", 2)
    assert cache.set_many({"a": 1}) == ["a"]
    assert cache.delete("k") is False
    assert cache.exists("k") is False
    assert cache.ttl("k") == 0.0
    assert cache.touch("k") is False
    assert cache.add("k", 1) is False
    assert cache.delete_pattern("*") == 0
    assert cache.invalidate_tags(["t"]) == 0
    cache.clear()
    assert cache.get_or_set("g", lambda: 5) == 5
    stats = cache.get_stats()
    assert stats.extra["fail_open_errors_total"] >= 13
    assert stats.extra["fail_open_get_errors_total"] >= 2
    assert stats.misses >= 2
    with pytest.raises(BackendUnavailable):
        cache.incr("n")


def test_large_value_reads_fail_like_the_others(make: Any, fresh_redis_server: RedisServer) -> None:
    """Large values are read by redis_wire, not hiredis: a dead server still means the breaker,
    BackendUnavailable with redis-py's ConnectionError chained, or a counted miss."""
    from cachekit.providers.redis_wire import READ_FROM

    big = {"a": b"a" * 4 * READ_FROM, "b": b"b" * 4 * READ_FROM}
    closed, open_ = make(compression="none"), make(compression="none", fail_open=True)
    for cache in (closed, open_):
        cache.set_many(big)
        assert cache.get_many(["a", "b"]) == big
        assert cache.get("a") == big["a"]
        assert (cache._large_gets, cache._large_mgets) == (True, True)
    fresh_redis_server.kill()
    for call in (lambda: closed.get_many(["a", "b"]), lambda: closed.get("a")):
        with pytest.raises(BackendUnavailable) as info:
            call()
        assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
    misses = open_.get_stats().misses
    assert open_.get_many(["a", "b"]) == {}
    assert open_.get("a", "miss") == "miss"
    assert open_.get_stats().misses == misses + 3
    fresh_redis_server.start()
    assert closed.get_many(["a", "b"]) == {}  # the restarted server lost them (no persistence)


def test_a_large_reply_cut_short_fails_as_through_hiredis(
    make: Any, fresh_redis_server: RedisServer
) -> None:
    """The server drops a client whose reply outgrows its output buffer limit, mid-reply:
    whoever reads it (redis_wire, hiredis) sees redis-py's ConnectionError, the connection is
    dropped, and the next call is whole again."""
    from cachekit.providers.redis_wire import READ_FROM

    cache = make(compression="none")
    big = {key: bytes([i]) * 8 * READ_FROM for i, key in enumerate("abcdef")}
    cache.set_many(big)
    assert cache.get_many(list(big)) == big
    observer = redis.Redis(host=fresh_redis_server.host, port=fresh_redis_server.port)
    observer.config_set("client-output-buffer-limit", "normal 1 0 0")
    try:
        causes: list[tuple[type, str]] = []
        for large in (True, False):
            cache._large_mgets = large
            with pytest.raises(BackendUnavailable) as info:
                cache.get_many(list(big))
            cause = info.value.__cause__
            causes.append((type(cause), str(cause)))
        assert causes == [(redis.exceptions.ConnectionError, "Connection closed by server.")] * 2
    finally:
        observer.config_set("client-output-buffer-limit", "normal 0 0 0")
        observer.close()
    assert cache.get_many(list(big)) == big


def _commands(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


def test_breaker_opens_then_fails_fast_without_contacting_the_server(
    make: Any, fresh_redis_server: RedisServer
) -> None:
    cache = make(breaker_failures=3, breaker_recovery=60)
    cache.set("k", 1)
    fresh_redis_server.kill()
    for _ in range(3):
        with pytest.raises(BackendUnavailable):
            cache.get("k")
    assert cache.breaker.state is BreakerState.OPEN
    fresh_redis_server.start()  # back, but the breaker waits for its recovery timeout
    observer = redis.Redis(host=fresh_redis_server.host, port=fresh_redis_server.port)
    before = _commands(observer)
    for _ in range(50):
        with pytest.raises(BackendUnavailable, match="circuit breaker open"):
            cache.get("k")
    # Our own INFO is the one command between the two reads: the cache sent nothing.
    assert _commands(observer) == before + 1
    observer.close()
    stats = cache.get_stats()
    assert stats.extra["breaker_state"] == int(BreakerState.OPEN)
    assert stats.extra["breaker_rejected_total"] >= 50


def test_recovery_after_restart(make: Any, fresh_redis_server: RedisServer) -> None:
    cache = make(breaker_failures=2, breaker_recovery=0.3, fail_open=True)
    cache.set("k", 1)
    fresh_redis_server.kill()
    cache.get("k")
    cache.get("k")
    assert cache.breaker.state is BreakerState.OPEN
    fresh_redis_server.start()
    time.sleep(0.35)
    assert cache.breaker.state is BreakerState.HALF_OPEN
    cache.set("k", 2)  # the half-open probe succeeds (the pool reconnects)
    assert cache.breaker.state is BreakerState.CLOSED
    assert cache.get("k") == 2


def test_async_fail_open_and_fail_closed(make: Any, fresh_redis_server: RedisServer) -> None:
    import asyncio

    closed, open_ = make(), make(fail_open=True)

    async def scenario() -> None:
        await closed.aset("k", 1)
        fresh_redis_server.kill()
        with pytest.raises(BackendUnavailable):
            await closed.aget("k")
        assert await open_.aget("k", "miss") == "miss"
        assert await open_.aset_many({"a": 1}) == ["a"]
        await closed.aclose()
        await open_.aclose()

    asyncio.run(scenario())


def test_data_persisted_before_the_outage_survives_kill_9(redis_binary: str) -> None:
    config = {"appendonly": "yes", "appendfsync": "always"}
    with RedisServer(config, binary=redis_binary) as server:
        cache = RedisCache(server.url, **FAST)
        cache.set_many({f"k{i}": i for i in range(100)}, ttl=None)
        cache.set("tagged", "v", tags=["t"])
        server.kill()  # SIGKILL: nothing is flushed on the way down
        server.start()
        try:
            assert cache.get_many([f"k{i}" for i in range(100)]) == {f"k{i}": i for i in range(100)}
            assert cache.invalidate_tags(["t"]) == 1
        finally:
            cache.close()


def _half_open(cache: Any, server: RedisServer) -> None:
    server.kill()
    with pytest.raises(BackendUnavailable):
        cache.get("k")
    assert cache.breaker.state is BreakerState.OPEN
    server.start()
    time.sleep(cache.breaker.recovery_timeout + 0.05)
    assert cache.breaker.state is BreakerState.HALF_OPEN


def test_a_probe_that_raises_before_reaching_the_server_gives_the_probe_back(
    make: Any, fresh_redis_server: RedisServer
) -> None:
    """The half-open probe was a write of a value that cannot be pickled: that says nothing
    about the server, and must not leave the breaker refusing every later call."""
    cache = make(breaker_failures=1, breaker_recovery=30)
    cache.set("k", 1)
    cache.breaker.recovery_timeout = 0.2  # short only once open: the set above stays closed
    _half_open(cache, fresh_redis_server)
    with pytest.raises(SerializationError):
        cache.set_many({"a": lambda: None})
    assert cache.breaker.state is BreakerState.HALF_OPEN
    cache.set("k", 2)  # the next call probes, succeeds and closes the breaker
    assert cache.breaker.state is BreakerState.CLOSED
    assert cache.get("k") == 2


def test_a_cancelled_async_probe_gives_the_probe_back(
    make: Any, fresh_redis_server: RedisServer
) -> None:
    cache = make(breaker_failures=1, breaker_recovery=0.3)

    async def scenario() -> None:
        await cache.aset("k", "v")
        with fresh_redis_server.stalled():  # the probe is in flight when its caller gives up
            with pytest.raises(BackendUnavailable):
                await cache.aget("k")  # socket timeout: the breaker opens
            await asyncio.sleep(0.35)
            assert cache.breaker.state is BreakerState.HALF_OPEN
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(cache.aget("k"), 0.1)
        assert await cache.aget("k") == "v"  # probed again: no "circuit breaker open"
        assert cache.breaker.state is BreakerState.CLOSED

    asyncio.run(scenario())


def test_get_stats_refused_by_an_acl_is_reported_not_raised(
    make: Any, fresh_redis_server: RedisServer
) -> None:
    admin = redis.Redis(host=fresh_redis_server.host, port=fresh_redis_server.port)
    admin.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-@dangerous")
    admin.close()
    url = f"redis://app:pw@{fresh_redis_server.host}:{fresh_redis_server.port}/0"
    cache = RedisCache(url, **FAST, breaker_failures=1, breaker_recovery=0.2)
    try:
        cache.set("x", 1)
        stats = cache.get_stats()
        assert (
            "NOPERM" in stats.extra["server_error"] or "permission" in stats.extra["server_error"]
        )
        cache.breaker.failure()  # open; then the half-open probe is get_stats's own call
        time.sleep(0.25)
        cache.get_stats()
        assert cache.breaker.state is BreakerState.CLOSED  # it answered: the server is up
        assert cache.get("x") == 1
    finally:
        cache.close()


@pytest.mark.parametrize("fail_open", [False, True])
def test_a_server_refusing_writes_at_maxmemory_is_an_outage_of_writes(
    make: Any, fresh_redis_server: RedisServer, fail_open: bool
) -> None:
    """``OOM command not allowed`` (maxmemory under noeviction) is up-but-refusing: writes
    raise BackendUnavailable, or with fail_open are dropped and counted like any outage,
    reads go on, and the breaker stays closed (the server answers, and fast)."""
    admin = redis.Redis(host=fresh_redis_server.host, port=fresh_redis_server.port)
    cache = make(fail_open=fail_open)
    cache.set("k", "v")
    admin.config_set("maxmemory", 1)
    try:
        writes = {
            "set": lambda: cache.set("k2", "v"),
            "set_many": lambda: cache.set_many({"a": 1}),
            "add": lambda: cache.add("n", 1),
            "aset": lambda: asyncio.run(cache.aset("z", 1)),
        }
        for write in writes.values():
            if fail_open:
                write()
            else:
                with pytest.raises(BackendUnavailable, match="maxmemory"):
                    write()
        assert cache.get("k") == "v"
        assert cache.breaker.state is BreakerState.CLOSED
        if fail_open:
            assert cache.set_many({"b": 2}) == ["b"]
            assert cache.get_stats().extra["fail_open_errors_total"] == len(writes) + 1
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
    cache.set("k2", "stored")
    assert cache.get("k2") == "stored"


async def loop_turns_during(call: Any) -> tuple[Any, int]:
    """``await call`` beside a 10 ms ticker: how many times the event loop came round."""
    turns = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal turns
        while not done.is_set():
            await asyncio.sleep(0.01)
            turns += 1

    ticking = asyncio.create_task(ticker())
    try:
        return await call, turns
    finally:
        done.set()
        await ticking


def test_async_stats_scan_and_inspect_do_not_block_the_event_loop(
    make: Any, fresh_redis_server: RedisServer
) -> None:
    """aget_stats fell back to the sync get_stats: a stalled Redis stalled every coroutine
    of the process (the gRPC server's other namespaces included) for the socket timeout."""
    cache = make(breaker_failures=100)
    cache.set("k", "v")

    async def scenario() -> None:
        assert (await cache.aget_stats()).items == 1
        with fresh_redis_server.stalled():
            stats, turns = await loop_turns_during(cache.aget_stats())
            assert "server_error" in stats.extra
            assert turns >= 10  # the 0.5 s socket timeout passed with the loop running
            for call in (cache.ascan_keys(), cache.ainspect("k")):
                with pytest.raises(BackendUnavailable):
                    await loop_turns_during(call)
        assert (await cache.aget_stats()).extra.get("server_error") is None

    asyncio.run(scenario())
