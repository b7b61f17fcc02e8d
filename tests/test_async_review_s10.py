"""Regression tests of the async twins from a review, against real servers:

* tiered ``atagged_keys`` and ``aclose`` ran blocking Redis calls (and a thread join) on the
  event loop;
* tiered ``get_or_set`` counted a set whenever the factory ran, even if L2 stored nothing;
* tiered ``aget_or_set`` returned a cached value for a coroutine object (leaking it) where
  every other provider raises ``InvalidArgumentType``;
* an ``alock`` acquire (or the async stampede lock) cancelled while its ``SET NX`` was in
  flight left the lock held with nobody owning its token; the async lock lacked ``extend``
  and ``owned``;
* a key with a lone surrogate was stored by memory and file, and raised a bare
  ``UnicodeEncodeError`` from tiered and the Redis async twins: ``InvalidKey`` everywhere now;
* the file provider's ``set_many({})`` accepted any TTL and tags (they were checked per item).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from cachekit import create_cache
from cachekit.errors import (
    InvalidArgument,
    InvalidArgumentType,
    InvalidKey,
    LockError,
    LockNotOwned,
)
from cachekit.interfaces import DistributedCache
from cachekit.providers.redis import RedisCache
from cachekit.providers.tiered import TieredCache
from cachekit.testing.servers import RedisServer

BOUND = 5.0
PAUSE_MS = 800
_names = itertools.count()


@pytest.fixture
def make_tiered(fresh_redis_server: RedisServer) -> Iterator[Callable[..., TieredCache]]:
    made: list[TieredCache] = []

    def make(**options: Any) -> TieredCache:
        l2 = {"url": fresh_redis_server.url, "prefix": f"asr{next(_names)}:"}
        cache = create_cache({"url": "tiered://", "l2": l2, **options})
        assert isinstance(cache, TieredCache)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


async def longest_stall(server: RedisServer, operation: Callable[[], Awaitable[Any]]) -> float:
    """Run ``operation`` while every Redis client is paused (``CLIENT PAUSE``); return the
    longest gap of a 5 ms heartbeat task: about the pause if the operation blocked the loop."""
    gaps: list[float] = []
    done = False

    async def heartbeat() -> None:
        last = time.monotonic()
        while not done:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.02)
    admin = redis.Redis(host=server.host, port=server.port)
    try:
        admin.execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL")
        started = time.monotonic()
        await operation()
        assert time.monotonic() - started > PAUSE_MS / 2000  # it did wait for the server
    finally:
        done = True
        await beat
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
    return max(gaps)


# -- 1, 2. tiered atagged_keys and aclose must not block the loop ------------------------------


@pytest.mark.parametrize("invalidation", ["pubsub", "none"])
def test_tiered_atagged_keys_does_not_block_the_loop(
    make_tiered: Callable[..., TieredCache], fresh_redis_server: RedisServer, invalidation: str
) -> None:
    cache = make_tiered(invalidation=invalidation)

    async def main() -> float:
        await cache.aset("k", 1, tags=["t"])
        assert await cache.atagged_keys(["t"]) == ["k"]
        return await longest_stall(fresh_redis_server, lambda: cache.atagged_keys(["t"]))

    assert asyncio.run(main()) < 0.3


def test_tiered_aclose_does_not_block_the_loop(
    make_tiered: Callable[..., TieredCache], fresh_redis_server: RedisServer
) -> None:
    cache = make_tiered()

    async def main() -> float:
        assert cache.start(timeout=BOUND)
        await cache.aset("k", 1)
        return await longest_stall(fresh_redis_server, cache.aclose)

    assert asyncio.run(main()) < 0.3
    assert not cache._channel.running  # type: ignore[union-attr]
    assert cache.get("k") == 1  # usable again: the subscriber restarts


# -- 4. tiered get_or_set counts only the sets L2 made ---------------------------------------


@pytest.mark.parametrize("use_async", [False, True])
def test_tiered_get_or_set_with_ttl_0_counts_no_set(
    make_tiered: Callable[..., TieredCache], use_async: bool
) -> None:
    cache = make_tiered(invalidation="none")
    if use_async:
        assert asyncio.run(cache.aget_or_set("k", lambda: 1, 0)) == 1
    else:
        assert cache.get_or_set("k", lambda: 1, 0) == 1
    assert cache.get("k", "missing") == "missing"
    assert cache.get_stats().sets == 0
    assert cache.get_or_set("k", lambda: 2, 60) == 2
    assert cache.get_stats().sets == 1


@pytest.mark.parametrize("use_async", [False, True])
def test_tiered_get_or_set_that_lost_its_add_counts_no_set(
    make_tiered: Callable[..., TieredCache], use_async: bool
) -> None:
    """Another writer stores the key while the factory runs: the add loses, nothing is stored
    by this cache, and the other writer's value is returned."""
    cache = make_tiered(invalidation="none")

    def factory() -> str:
        cache.l2.set("k", "theirs")  # a concurrent write through another client
        return "mine"

    if use_async:
        assert asyncio.run(cache.aget_or_set("k", factory, 60)) == "theirs"
    else:
        assert cache.get_or_set("k", factory, 60) == "theirs"
    assert cache.get_stats().sets == 0


def test_tiered_get_or_set_failing_open_counts_no_set() -> None:
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    l2 = {"url": dead, "fail_open": True, "socket_connect_timeout": 0.3, "retries": 0}
    cache = create_cache({"url": "tiered://", "l2": l2, "invalidation": "none"})
    try:
        assert cache.get_or_set("k", lambda: 4) == 4
        assert asyncio.run(cache.aget_or_set("j", lambda: 5)) == 5
        assert cache.get_stats().sets == 0
    finally:
        cache.close()


# -- 5. tiered aget_or_set refuses an awaitable even on a hit ---------------------------------


def test_tiered_aget_or_set_refuses_a_coroutine_object_on_a_hit(
    make_tiered: Callable[..., TieredCache],
) -> None:
    cache = make_tiered(invalidation="none")

    async def compute() -> int:
        return 2

    async def main() -> None:
        await cache.aset("k", 1)
        coroutine = compute()
        try:
            with pytest.raises(InvalidArgumentType):
                await cache.aget_or_set("k", coroutine)
        finally:
            coroutine.close()

    asyncio.run(main())


# -- 3. a cancelled lock acquire must not strand the lock -------------------------------------


@pytest.fixture
def debug_redis(redis_binary: str) -> Iterator[RedisServer]:
    """A server of the test's own that accepts ``DEBUG SLEEP`` (to stall it)."""
    with RedisServer({"enable-debug-command": "yes"}, binary=redis_binary) as server:
        yield server


def stall(server: RedisServer, seconds: float) -> threading.Thread:
    """Block the whole server for ``seconds`` (``DEBUG SLEEP`` from another client)."""

    def sleep() -> None:
        client = redis.Redis(host=server.host, port=server.port)
        client.execute_command("DEBUG", "SLEEP", seconds)
        client.close()

    thread = threading.Thread(target=sleep)
    thread.start()
    return thread


def test_alock_cancelled_while_its_set_is_in_flight_does_not_strand_the_lock(
    debug_redis: RedisServer,
) -> None:
    cache = RedisCache(debug_redis.url)

    async def main() -> None:
        await cache.aset("warm", 1)  # the async client is connected
        sleeper = stall(debug_redis, 0.5)
        await asyncio.sleep(0.05)

        async def worker() -> None:
            async with cache.alock("job", timeout=None):
                pytest.fail("acquired the lock")

        task = asyncio.create_task(worker())
        await asyncio.sleep(0.1)  # the SET NX is sent, the server asleep
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.to_thread(sleeper.join)
        lock = cache.alock("job", timeout=None)
        assert not await lock.locked()
        assert await lock.acquire(blocking=False)
        await lock.release()

    try:
        asyncio.run(main())
    finally:
        cache.close()


def test_async_stampede_lock_cancelled_in_flight_is_released(
    debug_redis: RedisServer, redis_binary: str
) -> None:
    """The loop ends while a leader's stampede ``SET NX`` is held by the server (queued by
    ``CLIENT PAUSE WRITE``, then the server stalled): the lock it takes must be released, or
    every caller waits ``stampede_timeout`` for a leader that is gone."""
    cache = RedisCache(debug_redis.url, stampede_timeout=30)
    admin = redis.Redis(host=debug_redis.host, port=debug_redis.port)

    async def leave_a_leader_in_flight() -> threading.Thread:
        await cache.aset("warm", 1)

        async def slow() -> int:
            await asyncio.sleep(5)
            return 1

        admin.execute_command("CLIENT", "PAUSE", 200, "WRITE")  # reads pass, the SET waits
        asyncio.get_running_loop().create_task(cache.aget_or_set("k", slow, 60))
        await asyncio.sleep(0.05)
        sleeper = stall(debug_redis, 0.5)
        await asyncio.sleep(0.05)
        return sleeper  # asyncio.run cancels the leader, its SET NX still in flight

    try:
        asyncio.run(leave_a_leader_in_flight()).join()
        time.sleep(0.1)
        assert admin.keys(cache._stamp_prefix + "*") == []
        started = time.monotonic()
        assert asyncio.run(cache.aget_or_set("k", lambda: 2, 60)) == 2
        assert time.monotonic() - started < 1
    finally:
        admin.close()
        cache.close()


def test_async_lock_extend_and_owned_match_the_sync_lock(redis_server: RedisServer) -> None:
    cache = RedisCache(redis_server.url, prefix=f"asr{next(_names)}:")

    async def main() -> None:
        mine, theirs = cache.alock("L", timeout=5), cache.alock("L", timeout=5)
        assert not await mine.owned()
        with pytest.raises(LockNotOwned):
            await mine.extend(1)
        assert await mine.acquire()
        assert await mine.owned()
        assert not await theirs.owned()
        raw = redis.Redis(host=redis_server.host, port=redis_server.port)
        await mine.extend(10)
        assert 14_000 < raw.pttl(cache._meta + "l:L") <= 15_000
        await mine.extend(60, replace_ttl=True)
        assert 59_000 < raw.pttl(cache._meta + "l:L") <= 60_000
        raw.close()
        await mine.release()
        assert not await mine.owned()
        with pytest.raises(LockNotOwned):
            await mine.extend(1)
        async with cache.alock("L", timeout=None) as forever:
            with pytest.raises(LockError, match="no timeout"):
                await forever.extend(1)

    try:
        asyncio.run(main())
    finally:
        cache.close()


# -- 6. a key that is not encodable as UTF-8 is an InvalidKey ---------------------------------

LONE = "a\udcffb"
LONE_OPERATIONS: dict[str, Callable[[Any], Any]] = {
    "set": lambda c: c.set(LONE, 1),
    "set_tagged": lambda c: c.set(LONE, 1, tags=["t"]),
    "add": lambda c: c.add(LONE, 1),
    "set_many": lambda c: c.set_many({"ok": 1, LONE: 1}),
    "get": lambda c: c.get(LONE),
    "get_many": lambda c: c.get_many(["ok", LONE]),
    "exists": lambda c: c.exists(LONE),
    "incr": lambda c: c.incr(LONE),
    "delete": lambda c: c.delete(LONE),
    "get_or_set": lambda c: c.get_or_set(LONE, lambda: 1),
    "aset": lambda c: asyncio.run(c.aset(LONE, 1)),
    "aget": lambda c: asyncio.run(c.aget(LONE)),
    "aget_many": lambda c: asyncio.run(c.aget_many([LONE])),
    "aget_or_set": lambda c: asyncio.run(c.aget_or_set(LONE, lambda: 1)),
}


@pytest.fixture(params=["memory", "file", "null", "tiered", "redis", "memcached"])
def any_cache(
    request: pytest.FixtureRequest, tmp_path: Path, make_tiered: Callable[..., TieredCache]
) -> Iterator[Any]:
    kind = request.param
    if kind in ("redis", "memcached"):  # their fast paths skip check_key for plain str keys
        server = request.getfixturevalue(f"{kind}_server")
        cache = create_cache(server.url, prefix=f"lone{next(_names)}" + (":" * (kind == "redis")))
        yield cache
        cache.close()
        return
    if kind == "tiered":
        cache = make_tiered()
        assert cache.start(timeout=BOUND)  # L1 in use: its reads are L1's first
        yield cache
        return
    url = {"memory": "memory://", "file": f"file://{tmp_path}/c", "null": "null://"}[kind]
    cache = create_cache(url)
    yield cache
    cache.close()


@pytest.mark.parametrize("operation", sorted(LONE_OPERATIONS))
def test_a_lone_surrogate_key_is_an_invalid_key(any_cache: Any, operation: str) -> None:
    if operation == "set_tagged" and not isinstance(any_cache, DistributedCache):
        pytest.skip("memcached has no tags")
    with pytest.raises(InvalidKey):
        LONE_OPERATIONS[operation](any_cache)
    assert any_cache.get("ok", "missing") == "missing"  # set_many stored nothing first


@pytest.mark.parametrize("operation", [n for n in sorted(LONE_OPERATIONS) if n[0] == "a"])
def test_redis_async_twins_refuse_a_lone_surrogate_key(
    redis_server: RedisServer, operation: str
) -> None:
    cache = RedisCache(redis_server.url, prefix=f"asr{next(_names)}:")
    try:
        with pytest.raises(InvalidKey):
            LONE_OPERATIONS[operation](cache)
    finally:
        cache.close()


def test_a_lone_surrogate_tag_is_an_invalid_argument(any_cache: Any) -> None:
    if not isinstance(any_cache, DistributedCache):
        pytest.skip("memcached has no tags")
    with pytest.raises(InvalidArgument):
        any_cache.set("k", 1, tags=["t\udcff"])


def test_memory_keeps_serving_non_ascii_keys() -> None:
    cache = create_cache("memory://")
    cache.set("clé", 1)
    cache.set_many({"日本": 2})
    assert cache.get("clé") == 1
    assert cache.get_many(["日本", "nö"]) == {"日本": 2}
    assert cache.get("nö", "missing") == "missing"


# -- 7. set_many checks its TTL and tags even for an empty mapping ---------------------------


@pytest.mark.parametrize(
    ("ttl", "tags"), [("x", ()), (True, ()), (float("nan"), ()), (5, [1]), (5, "t")]
)
@pytest.mark.parametrize("use_async", [False, True])
def test_file_set_many_of_nothing_checks_its_ttl_and_tags(
    tmp_path: Path, ttl: Any, tags: Any, use_async: bool
) -> None:
    cache = create_cache(f"file://{tmp_path}/c")

    def set_nothing() -> list[str]:
        if use_async:
            return asyncio.run(cache.aset_many({}, ttl, tags=tags))
        return cache.set_many({}, ttl, tags=tags)

    try:
        with pytest.raises((InvalidArgumentType, ValueError)):
            set_nothing()
    finally:
        cache.close()


def test_file_set_many_with_a_bad_key_stores_nothing(tmp_path: Path) -> None:
    cache = create_cache(f"file://{tmp_path}/c")
    try:
        with pytest.raises(InvalidKey):
            cache.set_many({"ok": 1, "": 2})
        assert cache.get("ok", "missing") == "missing"
    finally:
        cache.close()
