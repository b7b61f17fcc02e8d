"""The tiered near cache beyond the shared contract: configuration, cross-instance and
cross-process invalidation, reconnection, the l1_ttl bound and failure behaviour.

Every test runs against real ``redis-server`` processes; waits are bounded polls, not sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from test_redis_faults import loop_turns_during

from cachekit import MISSING, ConfigurationError, create_cache
from cachekit.errors import BackendUnavailable, NotAnInteger
from cachekit.providers.redis import RedisCache
from cachekit.providers.tiered import TieredCache
from cachekit.testing.servers import RedisServer

PEER = Path(__file__).with_name("tiered_peer.py")
ROOT = Path(__file__).resolve().parents[1]
#: Generous bound for one invalidation to cross (measured p99 is a few ms; CI machines stall).
BOUND = 5.0
FAST = {"retries": 0, "socket_connect_timeout": 0.5, "socket_timeout": 0.5}
_names = itertools.count()


def wait_for(condition: Callable[[], bool], timeout: float = BOUND) -> float:
    """Poll ``condition`` until true; return the seconds it took, fail after ``timeout``."""
    start = time.monotonic()
    pause = threading.Event()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        pause.wait(0.002)
    return time.monotonic() - start


@pytest.fixture
def make(redis_server: RedisServer) -> Iterator[Callable[..., TieredCache]]:
    """Tiered caches sharing one fresh L2 namespace (each with its own L1), subscribed."""
    made: list[TieredCache] = []
    prefix = f"tiered{next(_names)}:"

    def make(url: str | None = None, **options: Any) -> TieredCache:
        l2: dict[str, Any] = {"url": url or redis_server.url, "prefix": prefix}
        l2.update(options.pop("l2_options", {}))
        cache = create_cache({"url": "tiered://", "l2": l2, **options})
        assert isinstance(cache, TieredCache)
        made.append(cache)
        assert cache.start(timeout=BOUND)
        return cache

    yield make
    for cache in made:
        with contextlib.suppress(Exception):  # a test may have killed its server
            cache.clear()
        cache.close()


def test_a_bad_delta_raises_the_l2s_class(make: Callable[..., TieredCache]) -> None:
    # The L2's own error (redis-py's ResponseError too), from incr and decr, sync and async.
    cache = make()
    cache.set("n", 1)
    for call in (
        lambda: cache.incr("n", 1.5),  # type: ignore[arg-type]
        lambda: cache.decr("n", 1.5),  # type: ignore[arg-type]
        lambda: asyncio.run(cache.aincr("n", 1.5)),  # type: ignore[arg-type]
        lambda: asyncio.run(cache.adecr("n", 1.5)),  # type: ignore[arg-type]
    ):
        with pytest.raises(NotAnInteger) as caught:
            call()
        assert isinstance(caught.value, redis.exceptions.ResponseError)
    assert cache.get("n") == 1


def _calls(raw: redis.Redis, command: str) -> int:
    stats = raw.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def l1_holds(cache: TieredCache, key: str) -> bool:
    return key in cache.l1.keys()


def cached(cache: TieredCache, key: str, value: Any) -> None:
    """Read ``key`` until it is in L1 with ``value`` (a fill is skipped, by design, when an
    invalidation - e.g. of the write that stored it - arrives during the read)."""
    wait_for(lambda: cache.get(key) == value and l1_holds(cache, key))


# -- configuration ----------------------------------------------------------------------------


def test_url_form_with_encoded_nested_urls(redis_server: RedisServer) -> None:
    l1 = quote("memory://?max_entries=50", safe="")
    l2 = quote(f"{redis_server.url}?prefix=urlform:&default_ttl=30", safe="")
    cache = create_cache(f"tiered://?l1={l1}&l2={l2}&l1_ttl=5&name=pages")
    try:
        assert isinstance(cache, TieredCache)
        assert cache.name == "pages"
        assert cache.l1.max_entries == 50
        assert cache.l1_ttl == 5.0
        assert isinstance(cache.l2, RedisCache)
        assert cache.channel == "cachekit:invalidate:urlform:"
        cache.set("k", 1)
        assert cache.start(timeout=BOUND)
        cache.set("k", 2)
        assert cache.get("k") == 2
        remaining = cache.l1.ttl("k")
        assert remaining is not None
        assert 0 < remaining <= 5.0
    finally:
        cache.clear()
        cache.close()


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"l2": "redis://127.0.0.1:1/0", "bogus": 1}, "bogus"),
        ({}, "l2"),
        ({"l2": "redis://127.0.0.1:1/0", "l1_ttl": 0}, "l1_ttl"),
        ({"l2": "redis://127.0.0.1:1/0", "l1_ttl": "none"}, "l1_ttl"),
        ({"l2": "redis://127.0.0.1:1/0", "invalidation": "tracking"}, "invalidation"),
        ({"l2": "redis://127.0.0.1:1/0", "l1": "redis://127.0.0.1:1/0"}, "l1"),
        ({"l2": "memory://"}, "invalidation"),
        ({"l2": "memory://", "invalidation": "none", "channel": "c"}, "channel"),
        ({"l2": 42}, "l2"),
    ],
)
def test_options_are_validated_up_front(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        create_cache({"url": "tiered://", **options})
    assert info.value.key == key


def test_building_never_connects() -> None:
    cache = create_cache({"url": "tiered://", "l2": "redis://127.0.0.1:1/0"})
    assert isinstance(cache, TieredCache)
    assert not cache.subscriber_connected
    cache.close()


def test_local_only_mode_over_a_non_redis_l2() -> None:
    cache = create_cache({"url": "tiered://", "l2": "memory://", "invalidation": "none"})
    assert isinstance(cache, TieredCache)
    cache.set("k", 1, tags=["t"])
    assert cache.get("k") == 1
    assert cache.get_stats().extra["l1_hits"] == 1
    assert cache.invalidate_tags(["t"]) == 1
    assert cache.get("k", MISSING) is MISSING
    cache.close()


# -- reads and stats -----------------------------------------------------------------------------


def test_reads_fill_l1_capped_by_l2_ttl_and_l1_ttl(make: Callable[..., TieredCache]) -> None:
    writer, reader = make(), make(l1_ttl=2)
    writer.set("short", "s", ttl=1)
    writer.set("long", "l", ttl=100)
    writer.set("forever", "f", ttl=None)
    # The writes' invalidations reach the reader first: one arriving after its fill (a loaded
    # machine delays pub/sub) would evict the fresh copy and turn an L1 hit below into a miss.
    wait_for(lambda: reader.get_stats().extra["invalidations_received"] >= 3)
    assert reader.get_many(["short", "long", "forever"]) == {
        "short": "s",
        "long": "l",
        "forever": "f",
    }
    for key, bound in (("short", 1.0), ("long", 2.0), ("forever", 2.0)):
        assert reader.get(key) is not None
        remaining = reader.l1.ttl(key)
        assert remaining is not None
        assert 0 < remaining <= bound
    before = reader.get_stats().extra
    assert reader.get("long") == "l"
    assert reader.get_many(["long", "forever", "absent"]) == {"long": "l", "forever": "f"}
    after = reader.get_stats()
    assert after.extra["l1_hits"] - before["l1_hits"] == 3
    assert after.extra["l2_misses"] - before["l2_misses"] == 1
    assert after.extra["subscriber_connected"] is True
    assert after.hits == after.extra["l1_hits"] + after.extra["l2_hits"]


def _reads(raw: redis.Redis) -> int:
    """Read events the server has processed: one per round trip of a client (this INFO's too)."""
    return int(raw.info("stats")["total_reads_processed"])


def test_async_reads_take_one_l2_round_trip_and_fill_l1(fresh_redis_server: RedisServer) -> None:
    """aget/aget_many read an L1-missing value and its TTL in one round trip (a GET/PTTL
    pipeline), as get/get_many do, and fill L1 for min(L2 TTL left, l1_ttl). The server is the
    test's own and invalidation=none starts no subscriber: every read it counts is ours."""
    raw = redis.Redis(host=fresh_redis_server.host, port=fresh_redis_server.port)
    cache = create_cache(
        {"url": "tiered://", "l2": fresh_redis_server.url, "invalidation": "none", "l1_ttl": 30}
    )
    assert isinstance(cache, TieredCache)
    cache.set_many({"a": 1, "b": 2, "c": 3}, ttl=100)
    cache.set("short", "s", ttl=5)

    async def scenario() -> None:
        assert await cache.aget("warm-up", "miss") == "miss"  # connects this loop's client
        cache.l1.clear()
        calls = _calls(raw, "get"), _calls(raw, "pttl")
        trips: list[int] = []
        results: list[Any] = []
        for coroutine_factory in (
            lambda: cache.aget("a"),  # L1 miss: one round trip, then an L1 hit
            lambda: cache.aget("a"),
            lambda: cache.aget_many(["a", "b", "c", "short", "absent"]),  # b, c, short, absent
            lambda: cache.aget_many(["a", "b", "c", "short"]),  # all in L1 now
            lambda: cache.aget("absent", "miss"),
        ):
            before = _reads(raw)
            results.append(await coroutine_factory())
            trips.append(_reads(raw) - before - 1)  # less the second INFO's own read
        assert results == [
            1,
            1,
            {"a": 1, "b": 2, "c": 3, "short": "s"},
            {"a": 1, "b": 2, "c": 3, "short": "s"},
            "miss",
        ]
        assert trips == [1, 0, 1, 0, 1]
        # 1 key, then 4, then "absent" again: a GET and a PTTL each
        assert (_calls(raw, "get"), _calls(raw, "pttl")) == (calls[0] + 6, calls[1] + 6)

    try:
        asyncio.run(scenario())
        assert all(l1_holds(cache, key) for key in ("a", "b", "c", "short"))
        assert not l1_holds(cache, "absent")
        short, long = cache.l1.ttl("short"), cache.l1.ttl("a")
        assert short is not None
        assert 0 < short <= 5  # L2's remaining TTL
        assert long is not None
        assert 0 < long <= 30  # l1_ttl
        extra = cache.get_stats().extra
        assert (extra["l2_hits"], extra["l2_misses"]) == (4, 3)  # misses: warm-up, absent x2
        before = _reads(raw)
        assert cache.get_many(["a", "b"]) == {"a": 1, "b": 2}  # the sync side reads L1
        assert _reads(raw) - before - 1 == 0
    finally:
        cache.close()
        raw.close()


def test_async_reads_fill_l1_through_the_generic_fallback() -> None:
    """An L2 without a one-round-trip read: Cache._aget_with_ttl/_aget_many_with_ttl."""
    cache = create_cache(
        {"url": "tiered://", "l2": "memory://", "invalidation": "none", "l1_ttl": 30}
    )
    assert isinstance(cache, TieredCache)
    cache.l2.set_many({"a": 1, "b": 2}, ttl=5)
    cache.l2.set("forever", "f", ttl=None)

    async def scenario() -> list[Any]:
        return [
            await cache.aget("a"),
            await cache.aget_many(["b", "forever", "absent"]),
            await cache.aget("absent", "miss"),
        ]

    assert asyncio.run(scenario()) == [1, {"b": 2, "forever": "f"}, "miss"]
    for key, bound in (("a", 5.0), ("b", 5.0), ("forever", 30.0)):
        remaining = cache.l1.ttl(key)
        assert remaining is not None
        assert 0 < remaining <= bound
    assert not l1_holds(cache, "absent")
    cache.close()


def test_async_reads_fill_l1_while_subscribed(make: Callable[..., TieredCache]) -> None:
    writer, reader = make(), make()
    writer.set_many({"x": 1, "y": 2})
    # A fill is skipped, by design, while the write's own invalidation may still be on its way.
    wait_for(
        lambda: (
            asyncio.run(reader.aget_many(["x", "y", "z"])) == {"x": 1, "y": 2}
            and l1_holds(reader, "x")
            and l1_holds(reader, "y")
        )
    )
    writer.set("x", 10)  # the writer's invalidation evicts the reader's copy
    wait_for(lambda: not l1_holds(reader, "x"))
    wait_for(lambda: asyncio.run(reader.aget("x")) == 10 and l1_holds(reader, "x"))


# -- two instances in one process ----------------------------------------------------------------


def test_a_write_in_one_instance_evicts_the_key_from_the_others_l1(
    make: Callable[..., TieredCache],
) -> None:
    a, b = make(), make()
    a.set("k", "v1")
    cached(b, "k", "v1")
    a.set("k", "v2")
    wait_for(lambda: b.get("k") == "v2")
    assert b.get_stats().extra["invalidations_received"] >= 1
    assert a.get_stats().extra["invalidations_sent"] >= 2


@pytest.mark.parametrize(
    "write",
    [
        lambda c: c.delete("k"),
        lambda c: c.delete_many(["k", "x"]),
        lambda c: c.incr("n"),
        lambda c: c.touch("k", 100),
        lambda c: c.delete_pattern("k*"),
        lambda c: c.invalidate_tags(["t"]),
        lambda c: c.clear(),
        lambda c: c.set_many({"k": 9, "n": 9}),
        lambda c: asyncio.run(c.aset("k", 9)),
        lambda c: asyncio.run(c.adelete("k")),
        lambda c: asyncio.run(c.ainvalidate_tags(["t"])),
        lambda c: c.replace("k", 9),
        lambda c: asyncio.run(c.areplace("k", 9)),
    ],
    ids=[
        "delete", "delete_many", "incr", "touch", "delete_pattern", "invalidate_tags", "clear",
        "set_many", "aset", "adelete", "ainvalidate_tags", "replace", "areplace",
    ],
)  # fmt: skip
def test_every_write_invalidates_the_other_l1(
    make: Callable[..., TieredCache], write: Callable[[TieredCache], Any]
) -> None:
    a, b = make(), make()
    a.set("k", 1, tags=["t"])
    a.set("n", 1)
    cached(b, "k", 1)
    cached(b, "n", 1)
    write(a)
    wait_for(lambda: not (l1_holds(b, "k") and l1_holds(b, "n")))


def test_tag_invalidation_evicts_read_filled_copies_whose_tags_l1_cannot_know(
    make: Callable[..., TieredCache],
) -> None:
    a, b = make(), make()
    a.set("k", 1, tags=["t"])
    cached(b, "k", 1)  # filled by a read: b's L1 does not know the tag
    assert b.invalidate_tags(["t"]) == 1
    assert not l1_holds(b, "k")
    assert b.get("k", MISSING) is MISSING


def test_a_concurrent_invalidation_prevents_a_stale_fill(make: Callable[..., TieredCache]) -> None:
    """The epoch check: a value read before an invalidation is not put into L1 after it."""
    a, b = make(), make()
    a.set("k", "old")
    epoch = b._epoch  # the reader's lease, taken before its L2 read
    a.set("k", "new")
    wait_for(lambda: b._epoch != epoch)
    b._fill(epoch, "k", "old", 100.0)  # the late fill of the stale read
    assert not l1_holds(b, "k")
    assert b.get("k") == "new"


# -- a second real process -----------------------------------------------------------------------


class Peer:
    def __init__(self, url: str, prefix: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), url, prefix],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.read() == "ready"

    def read(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def __call__(self, *command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(" ".join(command) + "\n")
        self.proc.stdin.flush()
        answer = self.read()
        assert answer.startswith("ok"), answer
        return answer[3:]

    def close(self) -> None:
        try:
            self("quit")
        finally:
            assert self.proc.stdin is not None
            assert self.proc.stdout is not None
            self.proc.stdin.close()
            self.proc.wait(10)
            self.proc.stdout.close()


@pytest.fixture
def peer(redis_server: RedisServer) -> Iterator[Callable[[str], Peer]]:
    peers: list[Peer] = []

    def start(prefix: str) -> Peer:
        peers.append(Peer(redis_server.url, prefix))
        return peers[-1]

    yield start
    for p in peers:
        p.close()


def test_writes_in_another_process_evict_this_processs_l1(
    make: Callable[..., TieredCache], peer: Callable[[str], Peer]
) -> None:
    reader = make()
    prefix = reader.l2.prefix  # type: ignore[attr-defined]
    other = peer(prefix)
    delays = []
    for i in range(20):
        other("set", "k", f"v{i}")
        cached(reader, "k", f"v{i}")  # cached now: the next write must evict it from here
        start = time.monotonic()
        other("set", "k", f"v{i}b")
        delays.append(wait_for(lambda i=i: reader.get("k") == f"v{i}b") + time.monotonic() - start)
    assert max(delays) < BOUND
    # and this process's writes reach the other process's L1
    assert other("get", "k") == "v19b"
    reader.set("k", "mine")
    wait_for(lambda: other("get", "k") == "mine")
    reader.set("t1", "x", tags=["grp"])
    assert other("get", "t1") == "x"
    other("tags", "grp")
    wait_for(lambda: reader.get("t1", MISSING) is MISSING)
    assert reader.get_stats().extra["invalidations_received"] >= 20


# -- lost messages: reconnection and the l1_ttl bound ----------------------------------------------


def test_subscriber_reconnects_after_a_server_restart_and_flushes_l1(
    fresh_redis_server: RedisServer,
) -> None:
    cache = create_cache(
        {"url": "tiered://", "l2": {"url": fresh_redis_server.url, **FAST}, "l1_ttl": 60}
    )
    assert isinstance(cache, TieredCache)
    try:
        assert cache.start(timeout=BOUND)
        cache.set("k", "before")
        cached(cache, "k", "before")
        fresh_redis_server.kill()
        wait_for(lambda: not cache.subscriber_connected)
        assert cache.l1.keys() == []  # flushed: messages are being lost
        assert cache.get_stats().extra["subscriber_connected"] is False
        fresh_redis_server.start()  # same port, empty (no persistence): "before" is gone
        wait_for(lambda: cache.subscriber_connected, timeout=10)
        assert cache.get_stats().extra["subscriber_reconnects"] >= 1
        assert cache.get("k", MISSING) is MISSING
        cache.set("k", "after")
        assert cache.get("k") == "after"
    finally:
        cache.close()


def test_a_killed_subscription_flushes_l1_and_resubscribes(
    make: Callable[..., TieredCache], redis_server: RedisServer
) -> None:
    """A message lost while the subscription was down must not leave a stale L1 copy."""
    cache = make()
    cache.set("k", "v1")
    cached(cache, "k", "v1")
    raw = redis.Redis.from_url(redis_server.url)
    direct = RedisCache(redis_server.url, prefix=cache.l2.prefix)  # type: ignore[attr-defined]
    try:
        raw.client_kill_filter(_type="pubsub")
        # Written while no one may be listening, bypassing the tiered cache's publish.
        direct.set("k", "v2")
        wait_for(lambda: cache.get("k") == "v2")
        wait_for(lambda: cache.subscriber_connected)
        assert cache.get_stats().extra["subscriber_reconnects"] >= 1
    finally:
        raw.close()
        direct.close()


def test_l1_ttl_bounds_staleness_when_invalidations_are_lost(
    make: Callable[..., TieredCache], redis_server: RedisServer
) -> None:
    cache = make(l1_ttl=0.5)
    cache.set("k", "v1")
    assert cache.get("k") == "v1"
    # A writer that bypasses the tiered cache: no invalidation is ever published.
    direct = RedisCache(redis_server.url, prefix=cache.l2.prefix)  # type: ignore[attr-defined]
    try:
        written = time.monotonic()
        direct.set("k", "v2")
        assert cache.get("k") == "v1"  # stale, served from L1...
        wait_for(lambda: cache.get("k") == "v2", timeout=2)
        assert time.monotonic() - written <= 0.5 + 0.25  # ...for at most l1_ttl
    finally:
        direct.close()


@contextlib.contextmanager
def lone_tiered(server: RedisServer, *, fail_open: bool) -> Iterator[TieredCache]:
    """A subscribed tiered cache alone on ``server`` (short timeouts), closed after."""
    l2 = {"url": server.url, "fail_open": fail_open, **FAST}
    cache = create_cache({"url": "tiered://", "l2": l2, "l1_ttl": 60})
    assert isinstance(cache, TieredCache)
    try:
        assert cache.start(timeout=BOUND)
        yield cache
    finally:
        cache.close()


def test_fail_open_l2_down_serves_no_stale_l1_values(fresh_redis_server: RedisServer) -> None:
    with lone_tiered(fresh_redis_server, fail_open=True) as cache:
        cache.set("k", "v")
        assert cache.get("k") == "v"
        fresh_redis_server.kill()
        wait_for(lambda: cache.get("k", "miss") == "miss")
        cache.set("k", "dropped")  # fail-open: dropped by L2, so not kept in L1 either
        assert cache.get("k", "miss") == "miss"


def test_a_failed_replace_evicts_l1_since_the_server_may_have_applied_it(
    fresh_redis_server: RedisServer,
) -> None:
    with lone_tiered(fresh_redis_server, fail_open=True) as cache:
        cache.set("k", "old")
        cached(cache, "k", "old")
        with fresh_redis_server.stalled():
            assert cache.replace("k", "new") is False  # timed out: failed open
        # The server read the command before it froze and applies it when it resumes.
        wait_for(lambda: cache.l2.get("k") == "new")
        assert cache.get("k") == "new"  # not the L1 copy of "old"


def test_a_write_that_raised_leaves_nothing_in_l1(fresh_redis_server: RedisServer) -> None:
    # Whether it reached the server is unknown: L1 must not answer with the value meanwhile.
    with lone_tiered(fresh_redis_server, fail_open=False) as cache:
        cache.set("k", "old")
        cached(cache, "k", "old")
        with fresh_redis_server.stalled():
            with pytest.raises(BackendUnavailable):
                cache.set("k", "new")
            with pytest.raises(BackendUnavailable):
                asyncio.run(cache.aset_many({"k": "newer", "j": 1}))
            assert not l1_holds(cache, "k")
            assert not l1_holds(cache, "j")


def test_an_add_that_raised_evicts_l1_since_the_server_may_have_applied_it(
    fresh_redis_server: RedisServer,
) -> None:
    with lone_tiered(fresh_redis_server, fail_open=False) as cache:
        cache.set("k", "old")
        cached(cache, "k", "old")
        cache.l2.delete("k")  # gone from L2 behind the tiered cache's back: L1 still has it
        with fresh_redis_server.stalled():
            with pytest.raises(BackendUnavailable):
                cache.add("k", "new")
            assert not l1_holds(cache, "k")
            with pytest.raises(BackendUnavailable):
                asyncio.run(cache.aadd("k", "newer"))
        wait_for(lambda: cache.get("k") == "new")  # the server applied it on resuming


def test_fail_closed_l2_errors_propagate(fresh_redis_server: RedisServer) -> None:
    with lone_tiered(fresh_redis_server, fail_open=False) as cache:
        cache.set("k", "v")
        fresh_redis_server.kill()
        wait_for(lambda: not cache.subscriber_connected)
        with pytest.raises(BackendUnavailable):
            cache.get("k")
        with pytest.raises(BackendUnavailable):
            cache.set("k", 2)


# -- life cycle ----------------------------------------------------------------------------------


def test_close_stops_the_subscriber_thread(make: Callable[..., TieredCache]) -> None:
    cache = make()
    names = lambda: [t.name for t in threading.enumerate() if t.name.startswith("cachekit-inval")]  # noqa: E731
    assert any(cache.channel in n for n in names())  # type: ignore[operator]
    cache.close()
    assert not any(n.endswith(cache.channel) for n in names())  # type: ignore[arg-type]
    assert not cache.subscriber_connected
    cache.set("k", 1)  # usable again: restarts lazily
    assert cache.start(timeout=BOUND)
    assert cache.get("k") == 1


def test_lock_is_l2s(make: Callable[..., TieredCache]) -> None:
    import asyncio

    from cachekit.errors import UnsupportedOperation

    one, two = make(), make()
    with one.lock("job", timeout=5):
        assert two.lock("job", blocking_timeout=0.1).acquire() is False

    async def scenario() -> bool:
        async with two.alock("job", timeout=5):
            return True

    assert asyncio.run(scenario())
    local = create_cache({"url": "tiered://", "l2": "memory://", "invalidation": "none"})
    assert isinstance(local, TieredCache)
    with pytest.raises(UnsupportedOperation):
        local.lock("job")
    with pytest.raises(UnsupportedOperation):
        local.alock("job")


def test_close_returns_while_another_thread_keeps_using_the_cache(
    make: Callable[..., TieredCache],
) -> None:
    """A request thread still reading while the app closes the cache restarts the subscriber;
    that restart must not clear the stop flag the closing thread's subscriber waits on (it
    did, about half the time, and close() then never returned)."""
    for _ in range(5):
        cache = make()
        cache.set("k", "v")
        stop = threading.Event()

        def reader(cache: TieredCache = cache, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                cache.get("k")

        worker = threading.Thread(target=reader, daemon=True)
        worker.start()
        time.sleep(0.05)
        closer = threading.Thread(target=cache.close, daemon=True)
        closer.start()
        closer.join(BOUND)
        stop.set()
        worker.join(BOUND)
        assert not closer.is_alive(), "close() hung"
        cache.close()  # the subscriber the reader restarted
        assert not cache.subscriber_connected


def test_a_publish_refused_by_an_acl_is_counted_not_raised(
    fresh_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis 7 denies PUBLISH by default to a user granted keys and commands only
    (acl-pubsub-default resetchannels): the write has landed in L2, so the caller must not get
    a raw redis-py error; the failed publish is counted and logged, like a dropped one."""
    admin = redis.Redis(host=fresh_redis_server.host, port=fresh_redis_server.port)
    admin.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "+@all")
    admin.close()
    l2 = f"redis://app:pw@{fresh_redis_server.host}:{fresh_redis_server.port}/0"
    cache = create_cache({"url": "tiered://", "l2": {"url": l2, **FAST}, "l1_ttl": 30})
    assert isinstance(cache, TieredCache)
    with caplog.at_level("WARNING", logger="cachekit.providers.invalidation"):
        cache.set("k", "v1")
        assert cache.l2.get("k") == "v1"
        assert cache.get_stats().extra["invalidation_publish_errors"] >= 1
        cache.close()  # the wake-up publish is refused too: close still returns cleanly
    assert any("publish" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records)


def test_subscriber_losses_are_logged_at_most_once_per_interval(
    fresh_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """An outage retries the subscription every second: one warning, then one when it is
    back, not a line per attempt."""
    with (
        caplog.at_level("WARNING", logger="cachekit.providers.invalidation"),
        lone_tiered(fresh_redis_server, fail_open=True) as cache,
    ):
        fresh_redis_server.kill()
        wait_for(lambda: cache.get_stats().extra["subscriber_reconnects"] >= 3, timeout=10)
        fresh_redis_server.start()
        wait_for(lambda: cache.subscriber_connected, timeout=10)
    messages = [r.getMessage() for r in caplog.records if r.name.endswith("invalidation")]
    assert len([m for m in messages if " lost " in m]) == 1, messages
    assert len([m for m in messages if "resubscribed;" in m]) == 1, messages


@pytest.mark.parametrize(
    "fill",
    [
        lambda c: c.get_or_set("k", lambda: "new"),
        lambda c: c.get_or_set("k", "new"),
        lambda c: asyncio.run(c.aget_or_set("k", lambda: "new")),
    ],
    ids=["factory", "default", "async"],
)
def test_a_value_stored_by_get_or_set_evicts_the_other_l1(
    make: Callable[..., TieredCache],
    redis_server: RedisServer,
    fill: Callable[[TieredCache], Any],
) -> None:
    """L2 lost the key with no invalidation (maxmemory eviction, a flush by hand): the value
    get_or_set then stores is a write like any other, and the peers' copies go."""
    a, b = make(), make()  # a: the instance that fills, with nothing in its own L1
    b.set("k", "old")
    cached(b, "k", "old")
    raw = redis.Redis.from_url(redis_server.url)
    try:
        (stored,) = raw.keys(f"{a.l2.prefix}*k*")  # type: ignore[attr-defined]
        raw.delete(stored)  # gone from L2, silently
    finally:
        raw.close()
    sets = a.get_stats().sets
    assert fill(a) == "new"
    assert a.get_stats().sets == sets + 1  # counted as the other providers count it
    wait_for(lambda: b.get("k") == "new")
    assert a.get_or_set("k", lambda: "newer") == "new"  # a hit: nothing stored, nothing sent
    assert a.get_stats().sets == sets + 1


def test_async_stats_keys_and_inspect_use_l2s_async_twins(fresh_redis_server: RedisServer) -> None:
    """They called L2's sync methods: a stalled Redis blocked the event loop throughout."""

    with lone_tiered(fresh_redis_server, fail_open=False) as cache:
        cache.set("k", "v")

        async def scenario() -> None:
            assert (await cache.ascan_keys())[1] == ["k"]
            assert (await cache.ainspect("k")) is not None
            with fresh_redis_server.stalled():
                stats, turns = await loop_turns_during(cache.aget_stats())
                assert "server_error" in stats.extra["l2"]
                assert turns >= 10
                with pytest.raises(BackendUnavailable):
                    await cache.ascan_keys()
                with pytest.raises(BackendUnavailable):
                    await cache.ainspect("k")

        asyncio.run(scenario())
