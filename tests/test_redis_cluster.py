"""Redis Cluster (``redis+cluster://``) on a real local cluster: 3 primaries + 3 replicas.

The shared contract runs over the cluster (its waiting tests marked slow, as for the other
Redis transports), then cluster specifics: the key layout keeps an entry in one slot, multi-key
operations span every slot, and a killed primary is failed over without losing what its replica
holds, with the client and its circuit breaker recovering by themselves.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.crc import key_slot
from test_redis_contract import _mark_waiting_slow, _RedisContract

from cachekit import create_cache
from cachekit.errors import BackendUnavailable, ConfigurationError, InvalidKey
from cachekit.providers.redis_cluster import RedisClusterCache
from cachekit.resilience import BreakerState
from cachekit.testing.servers import RedisCluster

_names = itertools.count()


@_mark_waiting_slow
class TestRedisClusterContract(_RedisContract):
    cache_type = RedisClusterCache

    @pytest.fixture
    def url(self, redis_cluster: RedisCluster) -> str:
        return redis_cluster.url


@pytest.fixture
def cache(redis_cluster: RedisCluster) -> Iterator[RedisClusterCache]:
    cache = RedisClusterCache(redis_cluster.url, prefix=f"c{next(_names)}:")
    yield cache
    cache.clear()
    cache.close()


def _slot(key: str) -> int:
    return int(key_slot(key.encode()))


def test_configuration_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        create_cache("redis+cluster://127.0.0.1:7000/3")
    assert info.value.key == "url"
    with pytest.raises(ConfigurationError) as info:
        create_cache("redis+cluster://127.0.0.1:7000", prefix="app{1}:")
    assert info.value.key == "prefix"
    # Constructing never connects.
    assert isinstance(create_cache("redis+cluster://127.0.0.1:1,127.0.0.1:2"), RedisClusterCache)


def test_an_entry_lives_in_one_slot(cache: RedisClusterCache, redis_cluster: RedisCluster) -> None:
    cache.set("user:42", {"n": 1}, tags=["users"])
    cache.get_or_set("user:42", lambda: 0)
    meta = f"{cache.prefix[:-1]}#{cache.prefix[-1]}"
    data, side = f"{cache.prefix}{{user:42}}", f"{meta}k:{{user:42}}"
    assert _slot(data) == _slot(side) == _slot("user:42")
    raw = redis.RedisCluster(host=redis_cluster.host, port=redis_cluster.nodes[0].port)
    try:
        assert raw.exists(data) == 1
        assert raw.smembers(side) == {b"users"}
    finally:
        raw.close()
    with pytest.raises(InvalidKey):
        cache.set("}x", 1)


def test_multi_key_operations_span_every_slot(cache: RedisClusterCache) -> None:
    mapping = {f"key{i}": i for i in range(300)}
    assert len({_slot(k) for k in mapping}) > 200
    assert cache.set_many(mapping, tags=["all"]) == []
    assert cache.get_many(list(mapping)) == mapping
    assert cache.delete_many([f"key{i}" for i in range(100)]) == 100
    assert cache.delete_pattern("key1*") == 100  # key100..key199 were deleted already
    assert cache.invalidate_tags(["all"]) == 100  # key200..key299
    assert cache.get_many(list(mapping)) == {}


def test_tag_bookkeeping_across_slots(cache: RedisClusterCache) -> None:
    cache.set_many({"a": 1, "b": 2, "c": 3}, tags=["t", "u"])
    cache.set("b", 20, tags=["u"])  # b leaves t (its side set no longer lists it)
    assert cache.touch("a", ttl=100) is True
    assert cache.invalidate_tags(["t"]) == 2  # a, c
    assert cache.get_many(["a", "b", "c"]) == {"b": 20}
    assert cache.invalidate_tags(["u"]) == 1


def test_async_over_the_cluster(cache: RedisClusterCache) -> None:
    import asyncio

    async def main() -> None:
        mapping = {f"k{i}": i for i in range(50)}
        assert await cache.aset_many(mapping, tags=["t"]) == []
        assert await cache.aget_many(list(mapping)) == mapping
        assert await cache.atouch("k1", ttl=50)
        assert await cache.ainvalidate_tags(["t"]) == 50
        assert await cache.aincr("n", 2) == 2
        async with cache.alock("job", timeout=5):
            pass
        await cache.aclear()
        assert await cache.aget("n") is None

    asyncio.run(main())


def test_lock_and_stats(cache: RedisClusterCache) -> None:
    with cache.lock("job", timeout=5):
        assert cache.lock("job", timeout=5).acquire(blocking=False) is False
    cache.set_many({f"k{i}": i for i in range(10)})
    for stats in (cache.get_stats(), asyncio.run(cache.aget_stats())):
        assert stats.items == 10  # every primary scanned
        assert stats.extra["db_keys"] >= 10  # summed over the primaries
        assert stats.memory_bytes > 0


def _eventually(call: Any, timeout: float) -> Any:
    """``call()`` retried until it stops raising BackendUnavailable (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except BackendUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_failover_keeps_data_and_the_client_recovers(fresh_redis_cluster: RedisCluster) -> None:
    cluster = fresh_redis_cluster
    cache = RedisClusterCache(
        cluster.url,
        prefix="fo:",
        retries=1,
        socket_timeout=1,
        socket_connect_timeout=0.5,
        breaker_failures=3,
        breaker_recovery=0.5,
    )
    try:
        mapping = {f"key{i}": i for i in range(300)}
        assert cache.set_many(mapping) == []
        for node in cluster.nodes:  # every write reached the replicas before the crash
            raw = redis.Redis(host=node.host, port=node.port)
            try:
                if raw.info("replication")["role"] == "master":
                    assert raw.wait(1, 5000) == 1
            finally:
                raw.close()
        slot = _slot("fo:{key0}")
        dead = cluster.kill_primary(slot)
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):  # its slots are unserved until the failover
            cache.get("key0")
        cluster.wait_until_ok(timeout=20)  # a replica took over every slot of the dead primary
        assert cluster.primary_for_slot(slot) is not dead
        # The client refreshes its slot map; the breaker half-opens, probes and closes.
        assert _eventually(lambda: cache.get_many(list(mapping)), timeout=10) == mapping
        failover = time.monotonic() - started
        assert failover < 30
        fresh = {f"new{i}": i for i in range(300)}
        assert cache.set_many(fresh) == []
        assert cache.get_many(list(fresh)) == fresh
        assert cache.breaker.state is BreakerState.CLOSED
    finally:
        cache.close()
