"""django-redis 7's hash, set and sorted-set methods on the Redis backends
(``cachekit_django.redis_structures``): its signatures and return types, members encoded with
the provider's serializer, keys under the provider's prefix - found missing by django-redis's own
test suite (``python -m compat django-redis``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache.backends.base import BaseCache

from cachekit.errors import CacheError, UnsupportedOperation
from cachekit_django import cache as backends

Factory = Callable[..., Callable[..., BaseCache]]
REDIS_PREFIX = "django-tests:"


@pytest.fixture(params=["redis", "redis-json-zlib", "cluster"])
def structures(request: pytest.FixtureRequest, backend_factory: Factory) -> Any:
    """A Redis backend of each kind, with its own prefix; json+zlib as django-redis spells it."""
    kind = request.param
    cls, fixture = {
        "redis": (backends.RedisCache, "redis_location"),
        "redis-json-zlib": (backends.RedisCache, "redis_location"),
        "cluster": (backends.RedisClusterCache, "cluster_location"),
    }[kind]
    options: dict[str, Any] = {"prefix": f"{REDIS_PREFIX}structures-{kind}:"}
    if kind == "redis-json-zlib":
        options["SERIALIZER"] = "django_redis.serializers.json.JSONSerializer"
        options["COMPRESSOR"] = "django_redis.compressors.zlib.ZlibCompressor"
    cache = backend_factory(cls, request.getfixturevalue(fixture))(KEY_PREFIX="s", OPTIONS=options)
    cache.clear()
    return cache


def _raw_key(cache: Any, key: str, version: int | None = None) -> str:
    core = cache.cachekit
    made = cache.make_key(key, version)
    return f"{core.prefix}{{{made}}}" if core.hash_tags else core.prefix + made


def test_sets(structures: Any) -> None:
    cache = structures
    assert cache.sadd("s", "a", "b", 3, b"raw") == 4
    assert cache.sadd("s", "a") == 0
    assert cache.scard("s") == 4
    assert cache.smembers("s") == {"a", "b", 3, b"raw"}
    assert cache.sismember("s", 3) is True
    assert cache.sismember("s", "3") is False  # members keep their type
    assert cache.smismember("s", "a", "zzz", b"raw") == [True, False, True]
    assert cache.srem("s", "b", "missing") == 1
    assert cache.srandmember("s") in {"a", 3, b"raw"}
    assert len(cache.srandmember("s", 2)) == 2
    assert isinstance(cache.srandmember("s", 2), list)
    popped = cache.spop("s", 1)
    assert isinstance(popped, set)
    assert len(popped) == 1
    assert cache.scard("s") == 2
    assert cache.spop("empty") is None
    assert cache.smembers("empty") == set()
    assert cache.sadd("v", "x", version=2) == 1
    assert cache.smembers("v") == set()
    assert cache.smembers("v", version=2) == {"x"}


def test_set_scans_match_str_members(structures: Any) -> None:
    cache = structures
    cache.sadd("names", "bar1", "bar2", "zoo", "b*r", 7)
    assert cache.sscan("names") == {"bar1", "bar2", "zoo", "b*r", 7}
    assert cache.sscan("names", match="zoo") == {"zoo"}
    assert set(cache.sscan_iter("names", match="bar*", count=1)) == {"bar1", "bar2"}
    assert set(cache.sscan_iter("names")) == {"bar1", "bar2", "zoo", "b*r", 7}
    assert cache.sscan("names", match="b\\*r") == {"b*r"}
    assert cache.sscan("names", match=7) == {7}  # any value, encoded, as django-redis takes
    cache.sadd("raw", b"ab", b"cd")
    assert cache.sscan("raw", match=b"a*") == {b"ab"}


def test_set_scan_match_is_refused_for_signed_members(
    backend_factory: Factory, redis_location: str
) -> None:
    options = {"prefix": f"{REDIS_PREFIX}structures-signed:", "secret": "s" * 32}
    cache: Any = backend_factory(backends.RedisCache, redis_location)(OPTIONS=options)
    cache.sadd("names", "bar1")
    assert cache.smembers("names") == {"bar1"}
    with pytest.raises(UnsupportedOperation, match="signs"):
        cache.sscan("names", match="bar*")


def test_multi_key_set_commands(structures: Any) -> None:
    cache = structures
    cache.sadd("a", 1, 2, 3)
    cache.sadd("b", 2, 3, 4)
    if cache.cachekit.hash_tags:  # cluster: every key in a slot of its own
        for call in (
            lambda: cache.sdiff("a", "b"),
            lambda: cache.sinterstore("dest", "a", "b"),
            lambda: cache.sunionstore("dest", "a"),
            lambda: cache.smove("a", "b", 1),
        ):
            with pytest.raises(UnsupportedOperation, match="slot"):
                call()
        assert cache.sunion("a") == {1, 2, 3}  # one key is fine
        return
    assert cache.sdiff("a", "b") == {1}
    assert cache.sinter("a", "b") == {2, 3}
    assert cache.sunion("a", "b") == {1, 2, 3, 4}
    assert cache.sinterstore("i", "a", "b") == 2
    assert cache.smembers("i") == {2, 3}
    assert cache.sunionstore("u", "a", "b") == 4
    cache.sadd("old", 1, 9, version=3)
    assert cache.sdiffstore("d", "old", "a", version_dest=2, version_keys=3) == 2
    assert cache.smembers("d", version=2) == {1, 9}  # "a" at version 3 is empty
    assert cache.smove("a", "b", 1) is True
    assert cache.smove("a", "b", 1) is False
    assert cache.smembers("b") == {1, 2, 3, 4}


def test_hashes(structures: Any) -> None:
    cache = structures
    assert cache.hset("h", "name", "Alice") == 1
    assert cache.hset("h", mapping={"age": 30, "tags": ["x"]}) == 2
    assert cache.hset("h", "name", "Bob") == 0
    assert cache.hlen("h") == 3
    assert sorted(cache.hkeys("h")) == ["age", "name", "tags"]
    assert cache.hexists("h", "age") is True
    assert cache.hdel("h", "age") == 1
    assert cache.hdel("h", "age") == 0
    assert cache.hexists("h", "age") is False
    cache.hset("h", "email", "a@example.com", version=2)
    client = cache.client.get_client()
    raw = _raw_key(cache, "h", version=2)
    assert client.type(raw) == b"hash"
    assert client.hkeys(raw) == [b"email"]  # fields plain, under the provider's prefix
    value = client.hget(raw, "email")
    assert value != b"a@example.com"
    assert cache.cachekit.serializer.loads(value) == "a@example.com"  # the serializer's form


def test_sorted_sets(structures: Any) -> None:
    cache = structures
    assert cache.zadd("z", {"a": 1, "b": 2.5, 3: 10}) == 3
    assert cache.zadd("z", {"a": 5}, xx=True, ch=True) == 1
    assert cache.zcard("z") == 3
    assert cache.zcount("z", 2, 6) == 2
    assert cache.zincrby("z", 1.5, "b") == 4.0
    assert cache.zscore("z", "b") == 4.0
    assert cache.zscore("z", "missing") is None
    assert cache.zrange("z", 0, -1) == ["b", "a", 3]
    assert cache.zrange("z", 0, 0, desc=True, withscores=True) == [(3, 10.0)]
    assert cache.zrangebyscore("z", 4, "+inf", withscores=True) == [
        ("b", 4.0),
        ("a", 5.0),
        (3, 10.0),
    ]
    assert cache.zrangebyscore("z", "-inf", "+inf", start=1, num=1) == ["a"]
    assert cache.zrevrange("z", 0, 1) == [3, "a"]
    assert cache.zrevrangebyscore("z", 9, 0, withscores=True, score_cast_func=int) == [
        ("a", 5),
        ("b", 4),
    ]
    assert cache.zrank("z", "a") == 1
    assert cache.zrank("z", "nope") is None
    assert cache.zpopmax("z") == (3, 10.0)
    assert cache.zpopmin("z", 1) == [("b", 4.0)]
    assert cache.zrem("z", "a", "nope") == 1
    assert cache.zpopmax("z") is None
    assert cache.zpopmin("z", 2) == []
    cache.zadd("r", {"x": 1, "y": 2, "z": 3})
    assert cache.zremrangebyscore("r", 2, 3) == 2
    assert cache.zadd("r", {"x": 2}, incr=True) == 3.0


def test_structures_live_in_the_cache_namespace(structures: Any) -> None:
    """TTLs, delete, keys, delete_pattern and clear() reach these keys as any other."""
    cache = structures
    cache.sadd("set:1", "a")
    cache.hset("hash:1", "f", "v")
    cache.zadd("zset:1", {"m": 1})
    assert sorted(cache.keys("*")) == ["hash:1", "set:1", "zset:1"]
    assert cache.has_key("set:1")
    assert cache.ttl("set:1") is None
    assert cache.expire("set:1", 100) is True
    assert 99 <= cache.ttl("set:1") <= 100
    assert cache.persist("set:1") is True
    assert cache.pexpire("set:1", 50) is True
    time.sleep(0.1)
    assert cache.smembers("set:1") == set()
    assert cache.delete("hash:1") is True
    assert cache.hlen("hash:1") == 0
    cache.sadd("set:2", "b")
    assert cache.delete_pattern("set:*") == 1
    cache.clear()
    assert cache.zcard("zset:1") == 0


def test_wrong_type_is_a_cache_error(structures: Any) -> None:
    cache = structures
    cache.set("plain", "value")
    with pytest.raises(CacheError, match="WRONGTYPE"):
        cache.sadd("plain", "x")
    cache.sadd("a-set", "x")
    with pytest.raises(CacheError, match="WRONGTYPE"):
        cache.get("a-set")


@pytest.mark.servers
def test_structures_fail_open_as_ignore_exceptions(backend_factory: Factory) -> None:
    """An outage with IGNORE_EXCEPTIONS (fail_open) returns None, as django-redis's
    omit_exception does; without it the outage is raised."""
    from cachekit.errors import BackendUnavailable
    from cachekit.testing.servers import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    options = {"socket_connect_timeout": 0.2, "retries": 0}
    open_: Any = backend_factory(backends.RedisCache, dead)(
        OPTIONS={**options, "IGNORE_EXCEPTIONS": True}
    )
    assert open_.sadd("s", 1) is None
    assert open_.smembers("s") is None
    assert list(open_.sscan_iter("s")) == []
    closed: Any = backends.RedisCache(dead, {"OPTIONS": options})
    with pytest.raises(BackendUnavailable):
        closed.zcard("z")


def test_other_backends_have_no_structures(backend_factory: Factory) -> None:
    cache: Any = backend_factory(backends.MemoryCache, "no-structures")()
    assert not hasattr(cache, "sadd")  # as Django's own backends
    unconfigured: Any = backends.RedisCache("redis://h:6379/0", {"OPTIONS": {"bogus": 1}})
    with pytest.raises(backends.InvalidCacheConfiguration):
        unconfigured.sadd("s", 1)
