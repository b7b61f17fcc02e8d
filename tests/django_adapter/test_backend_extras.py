"""What the cachekit backends add beyond Django's API: tags, patterns, ``ttl``, locks,
stampede-safe ``get_or_set``, statistics - and clear refusals where a provider cannot."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache.backends.base import BaseCache

from cachekit import CacheStats
from cachekit.errors import LockError, UnsupportedOperation, ValueTooLarge
from cachekit_django import cache as backends

Factory = Callable[..., Callable[..., BaseCache]]
REDIS_PREFIX = "django-tests:"


@pytest.fixture(params=["memory", "redis", "cluster", "tiered"])
def distributed(request: pytest.FixtureRequest, backend_factory: Factory) -> Any:
    """A backend of each provider that has tags and patterns."""
    kind = request.param
    if kind == "memory":
        return backend_factory(backends.MemoryCache, "extras")(KEY_PREFIX="site")
    if kind == "tiered":
        location = request.getfixturevalue("tiered_location")
        return backend_factory(backends.TieredCache, location)(KEY_PREFIX="site")
    cls, fixture = {
        "redis": (backends.RedisCache, "redis_location"),
        "cluster": (backends.RedisClusterCache, "cluster_location"),
    }[kind]
    location = request.getfixturevalue(fixture)
    options = {"prefix": f"{REDIS_PREFIX}extras-{kind}:"}
    return backend_factory(cls, location)(KEY_PREFIX="site", OPTIONS=options)


def test_tags(distributed: Any) -> None:
    cache = distributed
    cache.clear()
    cache.set("p1", "one", tags=["catalog", "product:1"])
    cache.set("p2", "two", tags=["catalog"])
    assert cache.add("p3", "three", tags=["product:3"]) is True
    assert cache.set_many({"p4": 4, "p5": 5}, tags=["bulk"]) == []
    cache.set("untagged", "x")
    assert cache.get_or_set("p6", lambda: "six", tags=["catalog"]) == "six"
    assert cache.invalidate_tags(["product:1"]) == 1
    assert cache.get("p1") is None
    assert cache.invalidate_tags(["catalog"]) == 2
    assert cache.get_many(["p2", "p3", "p4", "p6", "untagged"]) == {
        "p3": "three",
        "p4": 4,
        "untagged": "x",
    }
    assert cache.invalidate_tags(["bulk"]) == 2
    with pytest.raises(TypeError, match="bare str"):
        cache.set("k", "v", tags="catalog")


def test_tags_are_namespaced_by_key_prefix(distributed: Any, backend_factory: Factory) -> None:
    cache = distributed
    cache.clear()
    cache.set("k", "v", tags=["t"])
    stored = cache.cachekit.inspect(cache.make_key("k"))
    assert stored is not None
    # the same tag under another KEY_PREFIX is another tag: invalidating it leaves ours
    core = cache.cachekit
    assert core.invalidate_tags(["t"]) == 0
    assert core.invalidate_tags(["site:t"]) == 1


def test_delete_pattern_and_make_pattern(distributed: Any) -> None:
    cache = distributed
    cache.clear()
    cache.set_many({"session:1": 1, "session:2": 2, "user:1": 3})
    cache.set("session:3", 4, version=2)
    assert cache.make_pattern("session:*") == "site:1:session:*"
    assert cache.make_pattern("a*", version=2) == "site:2:a*"
    assert cache.delete_pattern("session:*") == 2
    assert cache.get_many(["session:1", "session:2", "user:1"]) == {"user:1": 3}
    assert cache.get("session:3", version=2) == 4
    assert cache.delete_pattern("session:*", version=2) == 1
    page, keys = "", []
    while True:  # the made-key glob works with the core's own scan
        page, found = cache.cachekit.scan_keys(cache.make_pattern("*"), cursor=page)
        keys.extend(found)
        if not page:
            break
    assert keys == ["site:1:user:1"]


def test_delete_pattern_takes_django_redis_prefix_itersize_and_refuses_client(
    distributed: Any,
) -> None:
    cache = distributed
    cache.clear()
    cache.set_many({f"page:{i}": i for i in range(25)} | {"other:1": 1})
    assert cache.make_pattern("page:*", prefix="x[") == "x\\[:1:page:*"
    assert cache.delete_pattern("page:*", prefix="elsewhere") == 0
    assert cache.delete_pattern("page:*", itersize=4) == 25  # seven pages, each deleted
    assert cache.keys("*") == ["other:1"]
    cache.set("page:1", 1)
    assert cache.delete_pattern("page:*", None, "site", None, 10) == 1  # positionally
    with pytest.raises(UnsupportedOperation, match="client"):
        cache.delete_pattern("*", client=object())
    with pytest.raises(ValueError, match="itersize"):
        cache.delete_pattern("*", itersize=0)
    assert cache.get("other:1") == 1


def test_make_pattern_escapes_glob_characters_of_the_prefix(backend_factory: Factory) -> None:
    cache = backend_factory(backends.MemoryCache, "escape")(KEY_PREFIX="a*[b]?")
    assert cache.make_pattern("x*") == "a\\*\\[b\\]\\?:1:x*"
    cache.set("x1", 1)
    other = backend_factory(backends.MemoryCache, "escape")(KEY_PREFIX="aZ[b]?")
    other.set("x1", 2)
    assert cache.delete_pattern("x*") == 1
    assert other.get("x1") == 2


def test_make_pattern_needs_a_key_function_that_keeps_the_key(backend_factory: Factory) -> None:
    hashed = backend_factory(backends.MemoryCache, "hashed")(
        KEY_FUNCTION=lambda key, prefix, version: f"{prefix}:{version}:{hash(key)}"
    )
    with pytest.raises(UnsupportedOperation, match="KEY_FUNCTION"):
        hashed.make_pattern("a*")


def test_ttl(distributed: Any) -> None:
    cache = distributed
    cache.set("timed", 1, 100)
    cache.set("forever", 1, None)
    assert cache.ttl("timed") == 100  # whole seconds, as django-redis returns them
    assert 99_000 < cache.pttl("timed") <= 100_000
    assert cache.ttl("forever") is None
    assert cache.ttl("missing") == 0


def test_django_redis_extras(distributed: Any) -> None:
    """django-redis's key listing, expiry and conditional-write calls, on every provider that
    can list keys (review finding: they raised AttributeError/TypeError)."""
    import datetime

    cache = distributed
    cache.set_many({"session:a": 1, "session:b": 2, "other": 3}, 100)
    cache.set("session:c", 4, 100, version=2)
    assert sorted(cache.keys("session:*")) == ["session:a", "session:b"]
    assert sorted(cache.iter_keys("session:*", itersize=1)) == ["session:a", "session:b"]
    assert cache.keys("session:*", version=2) == ["session:c"]
    assert cache.set("other", 9, nx=True) is False
    assert cache.get("other") == 3
    assert cache.set("fresh", 9, nx=True) is True
    assert cache.set("absent", 1, xx=True) is False
    assert not cache.has_key("absent")
    assert cache.set("other", {"v": [10]}, 100, xx=True) is True
    assert cache.get("other") == {"v": [10]}
    assert cache.replace("other", 11, tags=["t"]) is True
    assert cache.invalidate_tags(["t"]) == 1
    with pytest.raises(ValueError, match="exclude"):
        cache.set("k", 1, nx=True, xx=True)
    cache.set("other", 3)
    assert cache.persist("session:a") is True
    assert cache.ttl("session:a") is None
    assert cache.pttl("session:a") is None
    assert cache.expire("session:a", 50) is True
    assert 49_000 < cache.pttl("session:a") <= 50_000
    assert cache.pexpire("session:a", 20_000) is True
    assert cache.ttl("session:a") == 20
    soon = datetime.datetime.now() + datetime.timedelta(seconds=30)
    assert cache.expire_at("session:a", soon) is True
    assert 29 <= cache.ttl("session:a") <= 30
    assert cache.expire_at("session:a", soon - datetime.timedelta(minutes=5)) is True
    assert cache.get("session:a") is None
    assert cache.pttl("missing") == 0
    assert cache.persist("missing") is False
    with pytest.raises(ValueError, match="not found"):
        cache.incr("counter")
    assert cache.incr("counter", 5, ignore_key_check=True) == 5
    assert cache.incr("counter", ignore_key_check=True) == 6


def test_django_redis_expiry_forms(distributed: Any) -> None:
    """expire_at/pexpire_at take a datetime or a Unix time (seconds / milliseconds), and
    expire/pexpire take DEFAULT_TIMEOUT, as django-redis's do (found by django-redis's own
    tests: an int raised AttributeError, pexpire_at was missing, DEFAULT_TIMEOUT / 1000)."""
    import datetime

    from django.core.cache.backends.base import DEFAULT_TIMEOUT

    from cachekit.errors import InvalidArgument

    cache = distributed
    cache.default_timeout = 120
    cache.set("k", 1, None)
    assert cache.expire_at("k", int(time.time()) + 60) is True
    assert 59 <= cache.ttl("k") <= 60
    assert cache.expire_at("k", time.time() + 30.0) is True  # a float too
    assert 29 <= cache.ttl("k") <= 30
    assert cache.pexpire_at("k", int(time.time() * 1000) + 40_000) is True
    assert 39 <= cache.ttl("k") <= 40
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=50)
    assert cache.pexpire_at("k", soon) is True
    assert 49 <= cache.ttl("k") <= 50
    assert cache.pexpire("k", DEFAULT_TIMEOUT) is True  # the alias's TIMEOUT, in seconds
    assert 119 <= cache.ttl("k") <= 120
    cache.persist("k")
    assert cache.expire("k", DEFAULT_TIMEOUT) is True
    assert 119 <= cache.ttl("k") <= 120
    assert cache.pexpire("missing", DEFAULT_TIMEOUT) is False
    assert cache.pexpire_at("missing", soon) is False
    assert cache.expire_at("missing", int(time.time()) + 60) is False
    for bad in ("tomorrow", True, None):
        with pytest.raises(InvalidArgument, match="Unix time"):
            cache.expire_at("k", bad)
    with pytest.raises(InvalidArgument, match="milliseconds"):
        cache.pexpire_at("k", datetime.date.today())
    assert cache.pexpire_at("k", int(time.time() * 1000) - 1000) is True  # past: removed
    assert not cache.has_key("k")


@pytest.mark.parametrize("kind", ["redis", "cluster"])
def test_incr_beyond_64_bits_as_django_redis(
    kind: str, request: pytest.FixtureRequest, backend_factory: Factory
) -> None:
    """Redis's INCRBY stops at signed 64 bits; django-redis then adds in Python and stores the
    int keeping the TTL (found by its own tests): so do the Redis backends, atomically."""
    from cachekit.errors import NotAnInteger

    cls, fixture = {
        "redis": (backends.RedisCache, "redis_location"),
        "cluster": (backends.RedisClusterCache, "cluster_location"),
    }[kind]
    options = {"prefix": f"{REDIS_PREFIX}bigincr-{kind}:"}
    cache: Any = backend_factory(cls, request.getfixturevalue(fixture))(OPTIONS=options)
    top = 2**63 - 1
    cache.set("num", top, 100)
    assert cache.incr("num") == top + 1
    assert cache.get("num") == top + 1
    assert 99 <= cache.ttl("num") <= 100  # the TTL is kept
    assert cache.incr("num", 2) == top + 3
    assert cache.decr("num", 3) == top  # back in range: INCRBY again
    assert cache.decr("num", -1) == top + 1
    cache.set("forever", top, None)
    assert cache.incr("forever") == top + 1
    assert cache.ttl("forever") is None
    assert cache.incr("fresh", 2**64, ignore_key_check=True) == 2**64
    cache.set("text", "abc")
    with pytest.raises(NotAnInteger):
        cache.incr("text")
    with pytest.raises(NotAnInteger):
        cache.incr("num", 1.5)
    cache.set("shared", top)

    def bump() -> None:
        for _ in range(10):
            cache.incr("shared")

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get("shared") == top + 40  # WATCH/MULTI: no lost update

    async def async_twins() -> None:
        cache.set("anum", top, 100)
        assert await cache.aincr("anum") == top + 1  # on the asyncio client, as incr's
        assert 99 <= cache.ttl("anum") <= 100
        assert await cache.adecr("anum", 2) == top - 1
        assert await cache.adecr("anum", -(2**64)) == top - 1 + 2**64
        with pytest.raises(NotAnInteger):
            await cache.aincr("text")

    asyncio.run(async_twins())


@pytest.mark.parametrize("kind", ["redis", "cluster"])
def test_incr_returns_the_exact_value_past_2_to_the_53(
    kind: str, request: pytest.FixtureRequest, backend_factory: Factory
) -> None:
    """The INCR script returned INCRBY's reply through a Lua number (a double): past 2**53 the
    value returned was rounded, and 2**63-1 came back as -2**63 (the stored one was right)."""
    cls, fixture = {
        "redis": (backends.RedisCache, "redis_location"),
        "cluster": (backends.RedisClusterCache, "cluster_location"),
    }[kind]
    options = {"prefix": f"{REDIS_PREFIX}exactincr-{kind}:"}
    cache: Any = backend_factory(cls, request.getfixturevalue(fixture))(OPTIONS=options)
    cache.set("p", 2**53)
    assert cache.incr("p") == 2**53 + 1
    cache.set("q", 2**63 - 2)
    assert cache.incr("q") == 2**63 - 1
    assert asyncio.run(cache.adecr("q", 2**62)) == 2**63 - 1 - 2**62
    assert cache.incr("fresh", 2**62 + 1, ignore_key_check=True) == 2**62 + 1


def test_delete_many_counts_as_django_redis(distributed: Any) -> None:
    cache = distributed
    cache.set_many({"a": 1, "b": 2, "c": 3})
    assert cache.delete_many(["a", "b", "missing"]) == 2
    assert cache.delete_many(k for k in ["a", "b"]) == 0  # a generator, as django-redis takes
    assert cache.delete_many([]) is None  # Django's own test_delete_many_no_keys


@pytest.mark.servers
def test_lock(backend_factory: Factory, redis_location: str) -> None:
    options = {"prefix": f"{REDIS_PREFIX}lock:"}
    cache: Any = backend_factory(backends.RedisCache, redis_location)(OPTIONS=options)
    with cache.lock("job", timeout=5):
        other = cache.lock("job", timeout=5, blocking_timeout=0.05)
        assert other.acquire() is False
        with pytest.raises(LockError), cache.lock("job", blocking_timeout=0.05):
            pass  # pragma: no cover - never entered
    assert cache.lock("job").acquire() is True


@pytest.mark.servers
def test_lock_has_django_redis_defaults_and_errors(
    backend_factory: Factory, redis_location: str
) -> None:
    """Review finding: the lock expired after 10 s by default and raised errors a django-redis
    project's ``except redis.exceptions.LockError`` did not catch."""
    import redis

    options = {"prefix": f"{REDIS_PREFIX}lock-compat:"}
    cache: Any = backend_factory(backends.RedisCache, redis_location)(OPTIONS=options)
    held = cache.lock("job")  # django-redis: timeout=None, held until released
    assert held.acquire() is True
    client = redis.Redis.from_url(redis_location)
    assert client.pttl(held._lock.name) == -1  # no expiry
    assert cache.lock("job", blocking=False).acquire() is False  # returns at once
    assert cache.lock("job", None, 5, 0.01, False).acquire() is False  # positional order
    with pytest.raises(redis.exceptions.LockError), cache.lock("job", blocking_timeout=0.02):
        pass  # pragma: no cover - never entered

    def release_elsewhere() -> BaseException | None:
        try:
            held.release()  # thread_local=True (django-redis): the token is this thread's
        except BaseException as exc:
            return exc
        return None

    result: list[BaseException | None] = []
    thread = threading.Thread(target=lambda: result.append(release_elsewhere()))
    thread.start()
    thread.join()
    assert isinstance(result[0], redis.exceptions.LockNotOwnedError)
    assert isinstance(result[0], LockError)
    held.release()
    with pytest.raises(redis.exceptions.LockNotOwnedError):
        held.release()
    timed = cache.lock("job", timeout=5)
    assert timed.acquire()
    assert 0 < client.pttl(timed._lock.name) <= 5000
    timed.release()


@pytest.mark.servers
def test_redis_outage_is_also_redis_pys_connection_error() -> None:
    """An outage raises cachekit's BackendUnavailable, which is also redis-py's
    ConnectionError (what Django's RedisCache raises), so existing handlers still catch it."""
    import socket

    import redis

    from cachekit.errors import BackendUnavailable

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    options = {"socket_connect_timeout": 0.2, "retries": 0}
    cache = backends.RedisCache(f"redis://127.0.0.1:{port}/0", {"OPTIONS": options})
    with pytest.raises(redis.exceptions.ConnectionError) as caught:
        cache.get("k")
    assert isinstance(caught.value, BackendUnavailable)


@pytest.mark.servers
def test_stampede_safe_get_or_set_across_threads(
    backend_factory: Factory, redis_location: str
) -> None:
    options = {"prefix": f"{REDIS_PREFIX}stampede:"}
    make = backend_factory(backends.RedisCache, redis_location, OPTIONS=options)
    make().clear()
    calls: list[int] = []
    results: list[Any] = []
    start = threading.Barrier(8)

    def slow() -> str:
        calls.append(1)
        time.sleep(0.2)
        return "computed"

    def worker() -> None:
        cache = make()  # a backend per thread, as Django builds them
        start.wait()
        results.append(cache.get_or_set("report", slow, 60))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["computed"] * 8
    assert calls == [1]


def test_get_stats(backend_factory: Factory) -> None:
    cache: Any = backend_factory(backends.MemoryCache, "stats")()
    cache.clear()
    before = cache.get_stats()
    cache.set("k", 1)
    cache.get("k")
    cache.get("missing")
    stats = cache.get_stats()
    assert isinstance(stats, CacheStats)
    assert stats.hits - before.hits == 1
    assert stats.misses - before.misses == 1
    assert stats.provider == "memory"


@pytest.mark.servers
@pytest.mark.parametrize("kind", ["memcached", "file"])
def test_ttl_in_whole_seconds_on_the_other_providers(
    kind: str, backend_factory: Factory, request: pytest.FixtureRequest, tmp_path: Any
) -> None:
    """django-redis's ``ttl`` (whole seconds, ``0`` missing) on providers without patterns."""
    if kind == "memcached":
        location = request.getfixturevalue("memcached_location")
        cache: Any = backend_factory(backends.MemcachedCache, location)()
    else:
        cache = backend_factory(backends.FileCache, str(tmp_path))()
    cache.set("timed", 1, 100)
    cache.set("forever", 1, None)
    assert cache.ttl("timed") == 100
    assert type(cache.ttl("timed")) is int
    assert cache.ttl("forever") is None
    assert cache.ttl("missing") == 0


@pytest.mark.servers
def test_memcached_refuses_what_it_cannot_do(
    backend_factory: Factory, memcached_location: str
) -> None:
    cache: Any = backend_factory(backends.MemcachedCache, memcached_location)()
    with pytest.raises(UnsupportedOperation, match="tags"):
        cache.set("k", "v", tags=["t"])
    with pytest.raises(UnsupportedOperation, match="tags"):
        cache.invalidate_tags(["t"])
    with pytest.raises(UnsupportedOperation, match="pattern"):
        cache.delete_pattern("k*")
    with pytest.raises(UnsupportedOperation, match="lock"):
        cache.lock("job")
    assert cache.get("k") is None


@pytest.mark.servers
def test_memcached_value_too_large_is_not_stored_and_old_value_goes(
    backend_factory: Factory, memcached_location: str
) -> None:
    # Django's PyMemcacheCache: a refused set raises and the key loses its old value;
    # set_many returns the keys that failed (Django's API; PyMemcacheCache raises there too).
    cache = backend_factory(backends.MemcachedCache, memcached_location)()
    big = os.urandom(2 * 1024 * 1024)  # incompressible, over the 1 MiB item limit
    cache.set("big", "small")
    with pytest.raises(ValueTooLarge):  # PyMemcacheCache raises MemcacheServerError
        cache.set("big", big)
    assert cache.get("big") is None
    assert cache.set_many({"ok": 1, "too_big": big}) == ["too_big"]
    assert cache.get("ok") == 1


@pytest.mark.servers
def test_raw_redis_client_as_django_redis_gives_it(redis_location: str) -> None:
    import django_redis
    from django.core.cache import caches
    from django.test import override_settings

    options = {"prefix": f"{REDIS_PREFIX}raw:"}
    settings = {
        "raw": {"BACKEND": "cachekit_django.cache.RedisCache", "LOCATION": redis_location},
        "mem": {"BACKEND": "cachekit_django.cache.MemoryCache", "LOCATION": "raw-test"},
    }
    settings["raw"]["OPTIONS"] = options
    with override_settings(CACHES=settings):
        cache: Any = caches["raw"]
        cache.set("n", 5)
        for client in (
            cache.client.get_client(),
            backends.get_redis_connection("raw"),
            django_redis.get_redis_connection("raw", write=False),
        ):
            assert client.get(f"{REDIS_PREFIX}raw::1:n") == b"5"  # ints are stored as digits
            assert client.ping() is True
        assert not hasattr(caches["mem"], "client")  # as for Django's own backends
        with pytest.raises(UnsupportedOperation, match="no Redis client"):
            backends.get_redis_connection("mem")
        with pytest.raises(NotImplementedError):  # django-redis's own message for such caches
            django_redis.get_redis_connection("mem")
        cache.delete("n")


def test_memory_has_no_lock(backend_factory: Factory) -> None:
    cache: Any = backend_factory(backends.MemoryCache, "nolock")()
    with pytest.raises(UnsupportedOperation, match="lock"):
        cache.lock("job")


class LiberalMemoryCache(backends.MemoryCache):
    """Django's documented way to silence key warnings: override validate_key."""

    def validate_key(self, key: str) -> None:
        pass


class UpperMemoryCache(backends.MemoryCache):
    def make_key(self, key: Any, version: int | None = None) -> str:
        return super().make_key(str(key).upper(), version)


def test_subclasses_customise_keys_as_in_django(recwarn: pytest.WarningsRecorder) -> None:
    liberal = LiberalMemoryCache("liberal", {})
    key = "some key with spaces" * 15  # long and with spaces: no warning, still stored
    liberal.set(key, "a value")
    assert liberal.get(key) == "a value"
    assert not recwarn.list
    upper = UpperMemoryCache("upper", {})
    upper.set("abc", 1)
    assert upper.get("ABC") == 1
    assert upper.cachekit.get(":1:ABC") == 1
    with pytest.raises(UnsupportedOperation, match="verbatim"):
        upper.make_pattern("a*")  # make_pattern goes through make_key, which changes the key
    liberal.clear()
    upper.clear()


def test_key_parts_replaced_on_an_instance_are_used() -> None:
    """Found by Django's own cache tests: a ``key_func`` assigned after construction (and a
    ``make_key`` patched onto the instance) were ignored by the fast key path."""
    from unittest import mock

    cache: Any = backends.MemoryCache("keyparts", {})
    cache.get("warm")  # the made-key memo holds ':1:warm'
    cache.key_func = lambda key, prefix, version: f"custom-{key}"
    cache.set("warm", 1)
    assert cache.cachekit.get("custom-warm") == 1
    assert cache.get("warm") == 1
    assert cache._inline_keys is False
    cache.key_func = backends.default_key_func  # Django's again: the fast path again
    assert cache._inline_keys is True
    assert cache.get("warm") is None  # ':1:warm', not the memo of before
    with mock.patch.object(cache, "make_key", lambda key, version=None: f"patched-{key}"):
        cache.set("p", 2)
        assert cache.cachekit.get("patched-p") == 2
    cache.set("p", 3)
    assert cache.cachekit.get(":1:p") == 3
    cache.clear()


def test_get_backend_timeout_as_each_replaced_backend_gives_it(
    backend_factory: Factory,
) -> None:
    """Found by Django's own tests: Django's RedisCache gives whole seconds, its memcached
    backends memcached's form; LocMemCache's (BaseCache's) is an absolute time."""
    import time as clock

    redis_like = backends.RedisCache("redis://127.0.0.1:1/0", {"TIMEOUT": 300})
    assert [redis_like.get_backend_timeout(t) for t in (10, -5, None, 2.7)] == [10, 0, None, 2]
    assert redis_like.get_backend_timeout() == 300
    mc = backends.MemcachedCache("127.0.0.1:1", {})
    assert [mc.get_backend_timeout(t) for t in (10, 0, None)] == [10, -1, 0]
    assert mc.get_backend_timeout(40 * 24 * 3600) > clock.time()
    memory = backends.MemoryCache("bt", {})
    assert abs(memory.get_backend_timeout(10) - (clock.time() + 10)) < 5


@pytest.mark.servers
def test_redis_backend_behind_sentinel(backend_factory: Factory, redis_sentinel: Any) -> None:
    options = {"prefix": f"{REDIS_PREFIX}sentinel:"}
    cache: Any = backend_factory(backends.RedisCache, redis_sentinel.url)(OPTIONS=options)
    cache.set("k", {"v": 1}, tags=["t"])
    assert cache.get("k") == {"v": 1}
    assert cache.invalidate_tags(["t"]) == 1
    cache.set("n", 1)
    assert cache.incr("n") == 2
    assert cache.incr_version("n") == 2
    assert cache.get("n", version=2) == 2
