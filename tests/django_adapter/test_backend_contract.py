"""Django's cache backend contract, written once and run over every cachekit backend on real
servers - and over Django's own ``LocMemCache``, which proves the contract is Django's.

Modelled on Django's ``BaseCacheTests`` (tests/cache/tests.py in Django's repository); each
test states behaviour Django's built-in backends show. Server TTLs cannot be faked, so expiry
tests really wait (memcached counts whole seconds, hence its longer wait).
"""

from __future__ import annotations

import pickle
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.core.cache.backends.base import BaseCache, CacheKeyWarning, InvalidCacheKey
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.locmem import LocMemCache

from cachekit_django import cache as backends

MakeBackend = Callable[..., BaseCache]
Factory = Callable[..., MakeBackend]
REDIS_PREFIX = "django-tests:"


class Unpicklable:
    def __getstate__(self) -> Any:
        raise pickle.PickleError("not today")


def custom_key_func(key: str, key_prefix: str, version: int) -> str:
    """A KEY_FUNCTION (Django's test suite uses the same shape)."""
    return "CUSTOM-" + "-".join([key_prefix, str(version), key])


class DjangoCacheContract:
    """What every Django cache backend does; subclasses supply ``make``."""

    #: memcached backends raise InvalidCacheKey where the others warn (CacheKeyWarning).
    strict_keys: ClassVar[bool] = False
    #: (timeout, wait) of the expiry test.
    expiry: ClassVar[tuple[float, float]] = (0.2, 0.45)
    #: Django's backends return None from delete_many; cachekit's how many, as django-redis.
    deleted_count: ClassVar[bool] = True

    @pytest.fixture
    def make(self) -> MakeBackend:  # pragma: no cover - always overridden
        raise NotImplementedError

    @pytest.fixture
    def cache(self, make: MakeBackend) -> BaseCache:
        cache = make()
        cache.clear()
        return cache

    # -- basics ---------------------------------------------------------------------------------

    def test_set_get(self, cache: BaseCache) -> None:
        cache.set("key", "value")
        assert cache.get("key") == "value"
        assert cache.get("missing") is None
        assert cache.get("missing", "fallback") == "fallback"

    def test_cached_none_is_returned_not_the_default(self, cache: BaseCache) -> None:
        cache.set("none", None)
        assert cache.get("none", "default") is None
        assert cache.has_key("none")

    def test_add(self, cache: BaseCache) -> None:
        assert cache.add("addkey", "first") is True
        assert cache.add("addkey", "second") is False
        assert cache.get("addkey") == "first"

    def test_delete(self, cache: BaseCache) -> None:
        cache.set("a", 1)
        assert cache.delete("a") is True
        assert cache.delete("a") is False
        assert cache.get("a") is None

    def test_has_key_and_in(self, cache: BaseCache) -> None:
        cache.set("hello", "goodbye")
        assert cache.has_key("hello")
        assert "hello" in cache
        assert not cache.has_key("goodbye")
        assert "goodbye" not in cache

    def test_get_many(self, cache: BaseCache) -> None:
        cache.set_many({"a": "a", "b": "b", "c": "c"})
        assert cache.get_many(["a", "c", "d"]) == {"a": "a", "c": "c"}
        assert cache.get_many(iter(["a", "b"])) == {"a": "a", "b": "b"}
        assert cache.get_many([]) == {}

    def test_set_many_returns_no_failed_keys(self, cache: BaseCache) -> None:
        assert cache.set_many({"k1": "v1", "k2": "v2"}) == []
        assert cache.get_many(["k1", "k2"]) == {"k1": "v1", "k2": "v2"}
        assert cache.set_many({}) == []

    def test_delete_many(self, cache: BaseCache) -> None:
        cache.set_many({"a": 1, "b": 2, "c": 3})
        assert cache.delete_many(["a", "b", "missing"]) == (2 if self.deleted_count else None)
        assert cache.get_many(["a", "b", "c"]) == {"c": 3}
        assert cache.delete_many(iter(["c"])) == (1 if self.deleted_count else None)
        assert cache.delete_many([]) is None  # as Django's, for every backend

    def test_clear(self, cache: BaseCache) -> None:
        cache.set_many({"a": 1, "b": 2})
        cache.clear()
        assert cache.get_many(["a", "b"]) == {}

    def test_incr_decr(self, cache: BaseCache) -> None:
        cache.set("answer", 41)
        assert cache.incr("answer") == 42
        assert cache.get("answer") == 42
        assert cache.incr("answer", 10) == 52
        assert cache.decr("answer", 10) == 42
        assert cache.decr("answer") == 41
        assert cache.incr("answer", -10) == 31
        with pytest.raises(ValueError, match="not found"):
            cache.incr("does_not_exist")
        with pytest.raises(ValueError, match="not found"):
            cache.decr("does_not_exist")
        assert not cache.has_key("does_not_exist")
        cache.set("text", "abc")
        with pytest.raises(TypeError):  # as from LocMemCache; NotAnInteger is one everywhere
            cache.incr("text")
        assert cache.get("text") == "abc"

    def test_close(self, cache: BaseCache) -> None:
        cache.set("a", 1)
        cache.close()
        assert cache.get("a") == 1  # usable after close, as Django's backends are

    def test_data_types(self, cache: BaseCache) -> None:
        stuff = {
            "string": "this is a string",
            "int": 42,
            "bool": True,
            "list": [1, 2, 3, 4],
            "tuple": (1, 2, 3, 4),
            "dict": {"A": 1, "B": 2},
            "function": custom_key_func,
            "class": Unpicklable,
        }
        cache.set("stuff", stuff)
        assert cache.get("stuff") == stuff

    def test_unicode_and_binary(self, cache: BaseCache) -> None:
        data = {"ascii": "ascii_value", "unicode_ascii": "Iñtërnâtiônàlizætiøn1", "ã": "ã"}
        for key, value in data.items():
            cache.set(key, value)
            assert cache.get(key) == value
        blob = bytes(range(256)) * 40
        cache.set("binary", blob)
        assert cache.get("binary") == blob
        assert isinstance(cache.get("binary"), bytes)

    def test_values_read_back_are_independent_copies(self, cache: BaseCache) -> None:
        stored = {"items": [1, 2]}
        cache.set("mutable", stored)
        stored["items"].append(3)  # changing the original after set
        first = cache.get("mutable")
        assert first == {"items": [1, 2]}
        first["items"].append(99)  # changing what a read returned
        assert cache.get("mutable") == {"items": [1, 2]}
        value = cache.get_or_set("made", lambda: {"n": [1]})
        value["n"].append(2)
        assert cache.get("made") == {"n": [1]}
        many = cache.get_many(["mutable"])
        many["mutable"]["items"].clear()
        assert cache.get("mutable") == {"items": [1, 2]}

    def test_unpicklable_value_raises(self, cache: BaseCache) -> None:
        with pytest.raises(pickle.PickleError, match="not today"):
            cache.set("unpicklable", Unpicklable())

    # -- timeouts -------------------------------------------------------------------------------

    def test_expiry_touch_and_default_timeout(self, make: MakeBackend) -> None:
        # One wait for every expiry check: server clocks cannot be faked.
        cache, short_default = make(), make(TIMEOUT=1)  # BaseCache makes TIMEOUT an int
        cache.clear()
        timeout = self.expiry[0]
        cache.set("expire1", "very quickly", timeout)
        cache.set("expire2", "very quickly", timeout)
        cache.set("expire3", "very quickly", timeout)
        cache.set("touched", "v", timeout)
        assert cache.touch("touched", 60) is True
        cache.set("persisted", "v", timeout)
        assert cache.touch("persisted", None) is True
        assert cache.touch("missing") is False
        short_default.set("default", "v")
        assert short_default.get("default") == "v"
        time.sleep(max(1.05, self.expiry[1]))
        assert cache.get("expire1") is None
        assert cache.add("expire2", "newvalue") is True
        assert cache.get("expire2") == "newvalue"
        assert not cache.has_key("expire3")
        assert cache.get("touched") == "v"
        assert cache.get("persisted") == "v"
        assert short_default.get("default") is None

    def test_forever_timeout(self, cache: BaseCache) -> None:
        cache.set("key1", "eggs", None)
        assert cache.get("key1") == "eggs"
        assert cache.add("key2", "ham", None) is True
        assert cache.add("key1", "new eggs", None) is False
        cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, None)
        assert cache.get_many(["key3", "key4"]) == {"key3": "sausage", "key4": "lobster bisque"}

    def test_long_timeout(self, cache: BaseCache) -> None:
        year = 60 * 60 * 24 * 365  # over memcached's 30-day limit for relative times
        cache.set("key1", "eggs", year)
        assert cache.get("key1") == "eggs"
        assert cache.add("key2", "ham", year) is True
        cache.set_many({"key3": "sausage"}, year)
        assert cache.get_many(["key2", "key3"]) == {"key2": "ham", "key3": "sausage"}

    def test_zero_timeout_does_not_cache(self, cache: BaseCache) -> None:
        cache.set("key1", "eggs")
        cache.set("key1", "new eggs", 0)
        assert cache.get("key1") is None
        assert cache.add("key2", "ham", 0) is True
        cache.set("gone", "v")
        assert cache.touch("gone", 0) is True
        assert cache.get("gone") is None
        assert cache.get("key2") is None
        cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, 0)
        assert cache.get_many(["key3", "key4"]) == {}
        cache.set("key5", "belgian fries", timeout=1)
        assert cache.touch("key5", timeout=0) is True
        assert cache.get("key5") is None

    def test_float_timeout(self, cache: BaseCache) -> None:
        cache.set("key1", "spam", 100.2)
        assert cache.get("key1") == "spam"

    def test_default_timeout_none_means_forever(self, make: MakeBackend) -> None:
        cache = make(TIMEOUT=None)
        assert cache.default_timeout is None
        cache.set("forever", "v")
        assert cache.get("forever") == "v"

    def test_default_timeout_zero_caches_nothing(self, make: MakeBackend) -> None:
        cache = make(TIMEOUT=0)
        cache.set("k", "v")
        assert cache.get("k") is None
        assert cache.add("k", "v") is True
        assert cache.get("k") is None

    # -- keys: prefix, version, key function, validation ------------------------------------------

    def test_key_prefix_separates_caches(self, make: MakeBackend) -> None:
        plain, prefixed = make(), make(KEY_PREFIX="cacheprefix")
        plain.clear()
        plain.set("somekey", "plain")
        prefixed.set("somekey", "prefixed")
        assert plain.get("somekey") == "plain"
        assert prefixed.get("somekey") == "prefixed"
        assert plain.make_key("k") == ":1:k"
        assert prefixed.make_key("k") == "cacheprefix:1:k"

    def test_versions(self, make: MakeBackend) -> None:
        cache, v2 = make(), make(VERSION=2)
        cache.clear()
        cache.set("answer1", 42)
        assert cache.get("answer1") == 42
        assert cache.get("answer1", version=1) == 42
        assert cache.get("answer1", version=2) is None
        assert v2.get("answer1") is None
        assert v2.get("answer1", version=1) == 42
        cache.set("answer2", 42, version=2)
        assert v2.get("answer2") == 42
        assert cache.get("answer2") is None
        cache.set_many({"ford1": 37, "arthur1": 42}, version=2)
        assert cache.get_many(["ford1", "arthur1"]) == {}
        assert cache.get_many(["ford1", "arthur1"], version=2) == {"ford1": 37, "arthur1": 42}
        assert v2.has_key("ford1")
        assert cache.add("answer1", 37, version=2) is True
        assert cache.get("answer1", version=2) == 37
        cache.delete_many(["ford1"], version=2)
        assert v2.get("ford1") is None
        cache.set("zero", "v0", version=0)  # version 0 is a version, not "the default"
        assert cache.get("zero", version=0) == "v0"
        assert cache.get("zero") is None

    def test_incr_decr_version(self, cache: BaseCache) -> None:
        cache.set("answer", 42, version=2)
        assert cache.get("answer") is None
        assert cache.incr_version("answer", version=2) == 3
        assert cache.get("answer", version=2) is None
        assert cache.get("answer", version=3) == 42
        assert cache.decr_version("answer", version=3) == 2
        assert cache.get("answer", version=2) == 42
        cache.set("plain", 1)
        assert cache.incr_version("plain") == 2
        assert cache.get("plain", version=2) == 1
        with pytest.raises(ValueError, match="not found"):
            cache.incr_version("does_not_exist")
        with pytest.raises(ValueError, match="not found"):
            cache.decr_version("does_not_exist")

    def test_custom_key_function(self, make: MakeBackend) -> None:
        custom = make(KEY_FUNCTION=custom_key_func)
        by_path = make(KEY_FUNCTION=f"{__name__}.custom_key_func")
        plain = make()
        custom.set("answer1", 42)
        assert custom.make_key("answer1") == "CUSTOM--1-answer1"
        assert by_path.get("answer1") == 42
        assert plain.get("answer1") is None

    def _bad_key(self, cache: BaseCache, key: str, expected: str) -> None:
        if self.strict_keys:
            with pytest.raises(InvalidCacheKey, match=expected):
                cache.set(key, "value")
            return
        with pytest.warns(CacheKeyWarning, match=expected):
            cache.set(key, "value")
        with pytest.warns(CacheKeyWarning, match=expected):
            assert cache.get(key) == "value"

    def test_key_with_spaces_or_control_characters(self, cache: BaseCache) -> None:
        self._bad_key(cache, "key with spaces", "characters that will cause errors")
        self._bad_key(cache, "key\nwith\x7fcontrol", "characters that will cause errors")

    def test_key_too_long_for_memcached(self, cache: BaseCache) -> None:
        self._bad_key(cache, "a" * 251, "longer than 250")

    def test_good_keys_warn_nothing(self, cache: BaseCache) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for key in ("a" * 246, "ünïcødé:✓", "x/y-z.1_2", "no-break\xa0space"):
                cache.set(key, 1)
                assert cache.get(key) == 1

    # -- get_or_set -------------------------------------------------------------------------------

    def test_get_or_set(self, cache: BaseCache) -> None:
        assert cache.get("projector") is None
        assert cache.get_or_set("projector", 42) == 42
        assert cache.get("projector") == 42
        assert cache.get_or_set("projector", 43) == 42
        assert cache.get_or_set("null", None) is None
        assert cache.get_or_set("null", "other") is None  # a cached None is a value

    def test_get_or_set_callable_and_version(self, cache: BaseCache) -> None:
        calls: list[int] = []

        def make_value() -> str:
            calls.append(1)
            return "value"

        assert cache.get_or_set("mykey", make_value) == "value"
        assert cache.get_or_set("mykey", make_value) == "value"
        assert calls == [1]
        assert cache.get_or_set("brian", 1979, version=2) == 1979
        assert cache.get("brian") is None
        assert cache.get("brian", version=2) == 1979

    def test_get_or_set_zero_timeout_returns_without_storing(self, cache: BaseCache) -> None:
        assert cache.get_or_set("k", "v", timeout=0) == "v"
        assert cache.get("k") is None


# -- Django's own LocMemCache: the contract is Django's -----------------------------------------


class TestDjangoLocMemCache(DjangoCacheContract):
    deleted_count = False

    @pytest.fixture
    def make(self, backend_factory: Factory) -> MakeBackend:
        return backend_factory(LocMemCache, "contract-locmem")


class TestDjangoFileBasedCache(DjangoCacheContract):
    deleted_count = False

    @pytest.fixture
    def make(self, backend_factory: Factory, tmp_path: Path) -> MakeBackend:
        return backend_factory(FileBasedCache, str(tmp_path / "django-files"))


# -- cachekit's backends ----------------------------------------------------------------------


class TestMemoryCache(DjangoCacheContract):
    @pytest.fixture
    def make(self, backend_factory: Factory) -> MakeBackend:
        return backend_factory(backends.MemoryCache, "contract-memory")


class TestMemoryCacheNativeBounds(DjangoCacheContract):
    """The memory provider bounded by its own policy (cachekit options) instead of culling."""

    @pytest.fixture
    def make(self, backend_factory: Factory) -> MakeBackend:
        options = {"max_entries": 1000, "policy": "adaptive"}
        return backend_factory(backends.MemoryCache, "contract-native", OPTIONS=options)


class TestCacheKitCacheMemoryURL(DjangoCacheContract):
    @pytest.fixture
    def make(self, backend_factory: Factory) -> MakeBackend:
        return backend_factory(
            backends.CacheKitCache, "memory://contract-url?policy=lfu&max_entries=500"
        )


class TestFileCache(DjangoCacheContract):
    @pytest.fixture
    def make(self, backend_factory: Factory, tmp_path: Path) -> MakeBackend:
        return backend_factory(backends.FileCache, str(tmp_path / "cachekit-files"))


class TestFileCacheURL(DjangoCacheContract):
    @pytest.fixture
    def make(self, backend_factory: Factory, tmp_path: Path) -> MakeBackend:
        return backend_factory(
            backends.CacheKitCache, f"file://{tmp_path}/cachekit-url?max_entries=1000"
        )


@pytest.mark.servers
class TestRedisCache(DjangoCacheContract):
    @pytest.fixture
    def make(self, backend_factory: Factory, redis_location: str) -> MakeBackend:
        options = {"prefix": REDIS_PREFIX + "contract:"}
        return backend_factory(backends.RedisCache, redis_location, OPTIONS=options)


@pytest.mark.servers
class TestMemcachedCache(DjangoCacheContract):
    strict_keys = True
    expiry = (1, 2.1)  # memcached's clock ticks in whole seconds

    @pytest.fixture
    def make(self, backend_factory: Factory, memcached_location: str) -> MakeBackend:
        options = {"prefix": "contract-"}
        return backend_factory(backends.MemcachedCache, memcached_location, OPTIONS=options)


@pytest.mark.servers
class TestRedisClusterCache(DjangoCacheContract):
    @pytest.fixture
    def make(self, backend_factory: Factory, cluster_location: str) -> MakeBackend:
        options = {"prefix": REDIS_PREFIX + "cluster:"}
        return backend_factory(backends.RedisClusterCache, cluster_location, OPTIONS=options)


@pytest.mark.servers
class TestTieredCache(DjangoCacheContract):
    @pytest.fixture
    def make(self, backend_factory: Factory, tiered_location: str) -> MakeBackend:
        return backend_factory(backends.TieredCache, tiered_location)
