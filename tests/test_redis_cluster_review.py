"""Redis Cluster regressions from a review, on real local clusters (never mocks).

Failures that need a broken cluster (a dead primary, an uncovered slot range, a frozen node)
each get a fresh cluster; the others share the session one.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis
from redis.crc import key_slot
from test_redis_cluster import _eventually
from test_redis_faults import loop_turns_during

from cachekit import create_cache
from cachekit.errors import BackendUnavailable
from cachekit.glob import compile_glob
from cachekit.providers.redis_cluster import RedisClusterCache
from cachekit.testing.servers import RedisCluster, RedisServer, free_port

_names = itertools.count()


def _slot(key: str) -> int:
    return int(key_slot(key.encode()))


def _replicated(cluster: RedisCluster) -> None:
    """Every write so far reached the replicas (a failover keeps it)."""
    for node in cluster.nodes:
        raw = redis.Redis(host=node.host, port=node.port)
        try:
            if node.running and raw.info("replication")["role"] == "master":
                assert raw.wait(1, 5000) == 1
        finally:
            raw.close()


async def _aretried(call: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except BackendUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


# -- 1. a failed invalidate_tags can be retried ------------------------------------------------


def test_a_failed_invalidate_tags_leaves_the_tag_sets_for_a_retry(
    fresh_redis_cluster: RedisCluster,
) -> None:
    """The members read were removed from the tag set before the per-slot deletions: when a
    deletion failed (its primary down), a retry found nothing and the entries stayed for their
    TTL. Sync (tag ``s``) and async (tag ``t``) twins, in one outage."""
    cluster = fresh_redis_cluster
    cache = RedisClusterCache(
        cluster.url,
        prefix="inv:",
        retries=0,
        socket_timeout=1,
        socket_connect_timeout=0.5,
        breaker_failures=1000,
    )
    try:
        # Two tag sets on one primary; a primary holding members of both dies.
        tag_node = cluster.primary_for_slot(_slot(cache._tag_prefix + "s"))
        t = next(
            f"t{i}"
            for i in itertools.count()
            if cluster.primary_for_slot(_slot(cache._tag_prefix + f"t{i}")) is tag_node
        )
        groups = {"s": [f"s{i}" for i in range(30)], t: [f"t{i}" for i in range(30)]}
        victims = {}
        for tag, keys in groups.items():
            cache.set_many(dict.fromkeys(keys, "v"), 300, tags=[tag])
            victims[tag] = [
                k for k in keys if cluster.primary_for_slot(cache._slot(k)) is not tag_node
            ]
        dead = cluster.primary_for_slot(cache._slot(victims["s"][0]))
        victims = {
            tag: [k for k in keys if cluster.primary_for_slot(cache._slot(k)) is dead]
            for tag, keys in victims.items()
        }
        assert victims["s"]
        assert victims[t]
        ttls = {tag: cache.redis_client().pttl(cache._tag_prefix + tag) for tag in groups}
        _replicated(cluster)
        dead.kill()
        with pytest.raises(BackendUnavailable):
            cache.invalidate_tags(["s"])

        async def fail_async() -> None:
            with pytest.raises(BackendUnavailable):
                await cache.ainvalidate_tags([t])

        asyncio.run(fail_async())
        cluster.wait_until_ok()  # a replica took the dead primary's slots over
        for tag in groups:  # the members are back, with the set's TTL (not made persistent)
            assert 0 < cache.redis_client().pttl(cache._tag_prefix + tag) <= ttls[tag]
        assert set(victims["s"]) <= set(_eventually(lambda: cache.tagged_keys(["s"]), 20.0))
        assert _eventually(lambda: cache.invalidate_tags(["s"]), 20.0) >= len(victims["s"])
        assert cache.get_many(groups["s"]) == {}
        assert cache.tagged_keys(["s"]) == []

        async def retry_async() -> None:
            assert set(victims[t]) <= set(await _aretried(lambda: cache.atagged_keys([t])))
            assert await _aretried(lambda: cache.ainvalidate_tags([t])) >= len(victims[t])
            assert await cache.aget_many(groups[t]) == {}
            assert await cache.atagged_keys([t]) == []

        asyncio.run(retry_async())
    finally:
        cache.close()


# -- 2. a cluster that cannot be reached at start-up --------------------------------------------


@pytest.fixture
def unreachable_url() -> str:
    """Startup nodes where nothing listens: the whole cluster down when the app starts."""
    return f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}"


def test_an_unreachable_cluster_raises_typed_errors_and_fails_open(unreachable_url: str) -> None:
    """redis-py's RedisCluster connects in its constructor, which ran outside the breaker in
    incr, get_or_set, inspect, lock and the near cache's L2 read: a raw RedisClusterException
    escaped, fail_open or not."""
    options: dict[str, Any] = {"socket_connect_timeout": 0.2, "breaker_failures": 1000}
    closed = RedisClusterCache(unreachable_url, **options)
    fo = RedisClusterCache(unreachable_url, fail_open=True, **options)
    for cache in (closed, fo):  # incr, inspect and locks never fail open
        with pytest.raises(BackendUnavailable):
            cache.incr("n")
        with pytest.raises(BackendUnavailable):
            cache.inspect("k")
        with pytest.raises(BackendUnavailable):
            cache.lock("job").acquire(blocking=False)
        with pytest.raises(BackendUnavailable):
            cache.scan_keys()
    with pytest.raises(BackendUnavailable):
        closed.get_or_set("k", lambda: 42)
    assert fo.get_or_set("k", lambda: 42) == 42  # computed, not cached
    before = fo.fail_open.snapshot()["fail_open_errors_total"]
    tiered = create_cache(
        {
            "url": "tiered://",
            "l2": {"url": unreachable_url, "fail_open": True, **options},
            "invalidation": "none",
        }
    )
    try:
        assert tiered.get("k") is None  # an L2 miss
        assert tiered.get_many(["k", "j"]) == {}
    finally:
        tiered.close()
    assert fo.get_or_set("j", lambda: 7) == 7
    assert fo.fail_open.snapshot()["fail_open_errors_total"] > before  # counted

    async def twins() -> None:
        for cache in (closed, fo):
            with pytest.raises(BackendUnavailable):
                await cache.aincr("n")
            with pytest.raises(BackendUnavailable):
                await cache.ainspect("k")
            with pytest.raises(BackendUnavailable):
                await cache.alock("job").acquire(blocking=False)
            with pytest.raises(BackendUnavailable):
                await cache.ascan_keys()
        assert await fo.aget_or_set("k", lambda: 42) == 42

    asyncio.run(twins())
    closed.close()
    fo.close()


# -- 3. locks on a cluster that lost a slot range ----------------------------------------------


def _uncover_a_slot_range(cluster: RedisCluster, slot: int) -> RedisServer:
    """Kill the primary serving ``slot`` and its replica, until the live nodes report
    ``cluster_state:fail`` (every slot then answers CLUSTERDOWN). Returns the dead primary."""
    primary = cluster.primary_for_slot(slot)
    nodes = cluster.cluster_nodes()
    primary_id = next(f[0] for f in nodes if f[1].split("@")[0].endswith(f":{primary.port}"))
    replica_port = next(
        int(f[1].split("@")[0].rpartition(":")[2]) for f in nodes if f[3] == primary_id
    )
    replica = next(n for n in cluster.nodes if n.port == replica_port)
    primary.kill()
    replica.kill()
    live = [n for n in cluster.nodes if n.running]
    deadline = time.monotonic() + 30
    while True:
        states = []
        for node in live:
            raw = redis.Redis(host=node.host, port=node.port)
            try:
                states.append(raw.cluster("info")["cluster_state"])
            finally:
                raw.close()
        if all(state == "fail" for state in states):
            return primary
        assert time.monotonic() < deadline, f"cluster still {states}"
        time.sleep(0.2)


def test_locks_raise_backend_unavailable_when_the_cluster_is_down(
    fresh_redis_cluster: RedisCluster,
) -> None:
    """CLUSTERDOWN escaped the lock as redis-py's ClusterDownError: redis_lock.py knew only
    the connection errors."""
    cluster = fresh_redis_cluster
    cache = RedisClusterCache(
        cluster.url,
        prefix="lk:",
        retries=0,
        socket_timeout=1,
        socket_connect_timeout=0.5,
        breaker_failures=1000,
    )
    try:
        cache.set("warm", 1)  # the client knows the slot map
        lock_key = cache._meta + "l:job"
        dead = cluster.primary_for_slot(_slot(lock_key))
        held = cache.lock("held", timeout=30)
        assert held.acquire()
        # A slot range that does not hold the lock key (that one would be a connection error).
        other = next(s for s in range(0, 16384, 97) if cluster.primary_for_slot(s) is not dead)
        _uncover_a_slot_range(cluster, other)
        assert cluster.primary_for_slot(_slot(lock_key)).running
        lock = cache.lock("job", timeout=5)
        with pytest.raises(BackendUnavailable):
            lock.acquire(blocking_timeout=0.2)
        with pytest.raises(BackendUnavailable):
            lock.locked()
        with pytest.raises(BackendUnavailable):
            lock.owned()
        for call in (lambda: held.extend(5), held.release):  # a failed release forgets the token
            with pytest.raises(BackendUnavailable):
                call()

        async def twins() -> None:
            alock = cache.alock("job", timeout=5)
            with pytest.raises(BackendUnavailable):
                await alock.acquire(blocking_timeout=0.2)
            with pytest.raises(BackendUnavailable):
                await alock.locked()

        asyncio.run(twins())
    finally:
        cache.close()


# -- 4. clear and stats stay inside this cache's prefix ------------------------------------------


@pytest.fixture
def prefix_pair(redis_cluster: RedisCluster) -> Iterator[Callable[[str, str], tuple[Any, Any]]]:
    made: list[RedisClusterCache] = []

    def make(a: str, b: str) -> tuple[Any, Any]:
        run = f"pp{next(_names)}"
        pair = (
            RedisClusterCache(redis_cluster.url, prefix=run + a),
            RedisClusterCache(redis_cluster.url, prefix=run + b),
        )
        made.extend(pair)
        return pair

    yield make
    for cache in made:
        cache.clear()
        cache.close()


_PREFIXES = pytest.mark.parametrize(
    ("a_prefix", "b_prefix"), [("myapp:", "myapp:sessions:"), ("app1", "app10")]
)


@pytest.mark.parametrize("twin", ["sync", "async"])
@_PREFIXES
def test_clear_leaves_a_cache_whose_prefix_extends_this_one(
    prefix_pair: Callable[[str, str], tuple[Any, Any]], twin: str, a_prefix: str, b_prefix: str
) -> None:
    """On a cluster a's data keys are all ``P{...}``, but clear scanned ``P*``, which also
    matched b's keys (and, for app1/app10, b's tag index ``app1#0...``)."""
    a, b = prefix_pair(a_prefix, b_prefix)
    b.set("s1", "session", tags=["users"])
    a.set("k", "mine", tags=["users"])
    if twin == "sync":
        a.clear()
    else:
        asyncio.run(a.aclear())
    assert a.get("k") is None
    assert a.tagged_keys(["users"]) == []
    assert b.get("s1") == "session"
    assert b.tagged_keys(["users"]) == ["s1"]
    assert b.invalidate_tags(["users"]) == 1


@pytest.mark.parametrize("twin", ["sync", "async"])
@_PREFIXES
def test_stats_count_only_this_caches_items(
    prefix_pair: Callable[[str, str], tuple[Any, Any]], twin: str, a_prefix: str, b_prefix: str
) -> None:
    """``get_stats().items`` scanned ``P*`` too: a counted b's entries and its tag index."""
    a, b = prefix_pair(a_prefix, b_prefix)
    b.set_many({"s1": 1, "s2": 2}, tags=["users"])
    a.set("k", "mine", tags=["users"])
    stats = a.get_stats() if twin == "sync" else asyncio.run(a.aget_stats())
    assert stats.items == 1
    assert b.get_stats().items == 2


# -- 5. ascan_keys does not block the event loop -------------------------------------------------


def test_ascan_keys_pages_a_cluster_without_blocking_the_event_loop(
    fresh_redis_cluster: RedisCluster,
) -> None:
    """On a cluster ascan_keys called the sync scan_keys: a stalled primary froze every
    coroutine of the process for the socket timeout."""
    cluster = fresh_redis_cluster
    cache = RedisClusterCache(
        cluster.url, prefix="as:", retries=0, socket_timeout=0.5, breaker_failures=1000
    )
    try:
        keys = {f"k{i}" for i in range(250)}
        cache.set_many(dict.fromkeys(keys, 1))

        async def scenario() -> None:
            pages: list[str] = []
            cursor = ""
            while True:
                cursor, page = await cache.ascan_keys("k*", cursor=cursor, count=100)
                pages.extend(page)
                if not cursor:
                    break
            assert sorted(pages) == sorted(keys)
            first = await cache.ascan_keys("k1?", count=5)
            assert first == cache.scan_keys("k1?", count=5)

            async def scan_all() -> object:
                try:
                    return await cache.ascan_keys("*")
                except BackendUnavailable as exc:
                    return exc

            with cluster.primary_for_slot(0).stalled():
                error, turns = await loop_turns_during(scan_all())
            assert isinstance(error, BackendUnavailable)
            assert turns >= 10  # the loop kept turning while the primary did not answer
            # Back to normal (this also lets the loop's end close the client: redis-py's
            # RedisCluster.aclose() closes nothing while the client awaits re-initialization).
            assert await _aretried(lambda: cache.ascan_keys("k1?", count=5)) == first

        asyncio.run(scenario())
    finally:
        cache.close()


def test_a_loop_ending_after_a_failed_call_closes_the_cluster_connections(
    redis_cluster: RedisCluster,
) -> None:
    """redis-py's async RedisCluster.aclose() closes nothing while the client awaits
    re-initialization (after a timeout or a connection error): a loop that ended then left
    every node's sockets open (ResourceWarnings, an error under this suite)."""
    cache = RedisClusterCache(
        redis_cluster.url, prefix=f"lc{next(_names)}:", retries=0, socket_timeout=0.3,
        breaker_failures=1000,
    )  # fmt: skip
    key = "k"
    try:

        async def scenario() -> None:
            await cache.aset(key, 1)
            primary = redis_cluster.primary_for_slot(cache._slot(key))
            with primary.stalled(), pytest.raises(BackendUnavailable):
                await cache.aget(key)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            asyncio.run(scenario())
            gc.collect()
        leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
        assert not leaks, [str(w.message) for w in leaks]
    finally:
        cache.close()


@pytest.mark.parametrize("pattern", ["a[b", "a[^b", "a\\", "a[b-", "k[]", "a*"])
def test_patterns_the_hash_tag_would_change_select_what_memory_selects(
    redis_cluster: RedisCluster, pattern: str
) -> None:
    """The cluster wraps keys as P{key}: a pattern with an unclosed class or a final
    backslash took the closing "}" in (a[b selected nothing where Redis's own rules, and the
    memory provider, select ab)."""
    keys = ["ab", "ac", "a-", "a\\", "a[b", "a", "k]", "kx"]
    expected = {key for key in keys if compile_glob(pattern)(key)}
    cache = RedisClusterCache(redis_cluster.url, prefix=f"pt{next(_names)}:")
    try:
        cache.set_many(dict.fromkeys(keys, 1))
        assert set(cache.scan_keys(pattern, count=1000)[1]) == expected
        assert set(asyncio.run(cache.ascan_keys(pattern, count=1000))[1]) == expected
        assert cache.delete_pattern(pattern) == len(expected)
        assert set(cache.scan_keys("*", count=1000)[1]) == set(keys) - expected
        cache.set_many(dict.fromkeys(keys, 1))
        assert asyncio.run(cache.adelete_pattern(pattern)) == len(expected)
        assert set(cache.scan_keys("*", count=1000)[1]) == set(keys) - expected
    finally:
        cache.clear()
        cache.close()
