"""Bad ``CACHES`` entries are reported by system checks at start-up, with a hint."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import Error, Warning
from django.core.management import call_command
from django.core.management.base import SystemCheckError

import cachekit
from cachekit_django.cache import InvalidCacheConfiguration, MemoryCache, RedisCache
from cachekit_django.checks import check_caches, check_invalidation_settings

MEMORY = "cachekit_django.cache.MemoryCache"


def _caches(settings: Any, **entries: dict[str, Any]) -> list[Any]:
    settings.CACHES = {"default": {"BACKEND": MEMORY}, **entries}
    return check_caches()


def test_good_settings_pass(settings: Any) -> None:
    messages = _caches(
        settings,
        redis={"BACKEND": "cachekit_django.cache.RedisCache", "LOCATION": "redis://h:6379/1"},
        mc={
            "BACKEND": "cachekit_django.cache.MemcachedCache",
            "LOCATION": "a:11211;b:11211",
            # the options Django's documentation gives PyMemcacheCache: a one-line switch
            "OPTIONS": {
                "no_delay": True,
                "ignore_exc": True,
                "max_pool_size": 4,
                "use_pooling": True,
            },
        },
        any={"BACKEND": "cachekit_django.cache.CacheKitCache", "LOCATION": "memory://?policy=lfu"},
        django={"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "TIMEOUT": "bad"},
    )
    assert messages == []


@pytest.mark.parametrize(
    ("entry", "key", "text"),
    [
        ({"OPTIONS": {"polcy": "lru"}}, "polcy", "unknown option 'polcy'"),
        ({"OPTIONS": {"policy": "fifo"}}, "policy", "fifo"),
        ({"OPTIONS": {"max_memory_bytes": "lots"}}, "max_memory_bytes", "64MB"),
        ({"OPTIONS": {"MAX_ENTRIES": 0}}, "MAX_ENTRIES", ">= 1"),
        ({"OPTIONS": {"CULL_FREQUENCY": "often"}}, "CULL_FREQUENCY", "integer"),
        ({"LOCATION": "redis://h:6379/0"}, "LOCATION", "memory://"),
    ],
)
def test_bad_memory_options(settings: Any, entry: dict[str, Any], key: str, text: str) -> None:
    [message] = _caches(settings, bad={"BACKEND": MEMORY, **entry})
    assert isinstance(message, Error)
    assert message.id == "cachekit_django.E001"
    assert text in message.msg
    assert message.obj == "CACHES['bad']"
    assert key in message.hint


@pytest.mark.parametrize(
    ("backend", "location", "options", "text"),
    [
        ("RedisCache", "localhost:6379", {}, "redis://127.0.0.1:6379/0"),
        ("RedisCache", "redis://h:6379/0", {"socket_timeout": "soon"}, "socket_timeout"),
        ("RedisCache", "redis://h:6379/0", {"MAX_ENTRIES": 5}, "memory backend"),
        ("MemcachedCache", "unix:/tmp/memcached.sock", {}, "unix socket"),
        ("MemcachedCache", "h:11211", {"no_delay": False}, "no_delay"),
        ("MemcachedCache", "h:notaport", {}, "notaport"),
        ("TieredCache", "", {}, "tiered://"),
        ("CacheKitCache", "not a url", {}, "cachekit URL"),
        ("CacheKitCache", "nosuch://x", {}, "nosuch"),
    ],
)
def test_bad_network_entries(
    settings: Any, backend: str, location: str, options: dict[str, Any], text: str
) -> None:
    entry = {"BACKEND": f"cachekit_django.cache.{backend}", "LOCATION": location}
    [message] = _caches(settings, bad={**entry, "OPTIONS": options})
    assert message.id == "cachekit_django.E001"
    assert text in message.msg
    assert message.hint


def test_a_missing_driver_hints_at_its_extra(settings: Any) -> None:
    """A provider whose driver is not installed pointed at OPTIONS['provider'], an option that
    does not exist: the fix is to install the extra the message names."""
    registry = cachekit.provider_registry
    registry.register("missing-driver-test", "cachekit_no_such_driver_module:Cache")
    try:
        [message] = _caches(
            settings,
            bad={
                "BACKEND": "cachekit_django.cache.CacheKitCache",
                "LOCATION": "missing-driver-test://h",
            },
        )
    finally:
        registry._paths.pop("missing-driver-test", None)
    assert message.id == "cachekit_django.E001"
    assert "cannot be loaded" in message.msg
    assert "'provider'" not in message.hint
    assert "Install the extra into the environment that runs Django: pip install" in message.hint
    assert "CACHES['bad']['LOCATION']" in message.hint


def test_option_hints_are_sentences(settings: Any) -> None:
    [message] = _caches(settings, bad={"BACKEND": MEMORY, "OPTIONS": {"polcy": "lru"}})
    assert message.hint == (
        "Fix CACHES['bad']['OPTIONS']['polcy'], or the same option in the LOCATION URL's query "
        "string (docs/django.md lists each provider's options)."
    )


def test_django_level_settings(settings: Any) -> None:
    messages = _caches(
        settings,
        t={"BACKEND": MEMORY, "TIMEOUT": "300s"},
        v={"BACKEND": MEMORY, "VERSION": "two"},
        k={"BACKEND": MEMORY, "KEY_FUNCTION": "no.such.function"},
        # What Django itself takes (int("60")), as settings read from the environment give:
        env={"BACKEND": MEMORY, "TIMEOUT": "60", "VERSION": "2"},
    )
    assert sorted((m.id, m.obj) for m in messages) == [
        ("cachekit_django.E002", "CACHES['t']"),
        ("cachekit_django.E003", "CACHES['v']"),
        ("cachekit_django.E004", "CACHES['k']"),
    ]


def test_file_cache_location_may_be_a_path(settings: Any, tmp_path: Any) -> None:
    """Review finding: FileBasedCache's usual ``BASE_DIR / "cache"`` was refused."""
    from cachekit_django.cache import FileCache

    entry = {"BACKEND": "cachekit_django.cache.FileCache", "LOCATION": tmp_path / "cache"}
    assert _caches(settings, f=entry) == []
    cache = FileCache(tmp_path / "cache", {})
    cache.set("k", "v")
    assert cache.get("k") == "v"
    assert (tmp_path / "cache").is_dir()


def test_file_cache_location_checks_as_djangos(settings: Any, tmp_path: Any) -> None:
    """Review finding: Django's caches.W002/W003 look at FileBasedCache only."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STATIC_ROOT = None
    settings.STATICFILES_DIRS = [str(tmp_path / "assets")]
    backend = "cachekit_django.cache.FileCache"
    messages = _caches(
        settings,
        inside={"BACKEND": backend, "LOCATION": str(tmp_path / "media" / "cache")},
        contains={"BACKEND": backend, "LOCATION": str(tmp_path)},
        relative={"BACKEND": backend, "LOCATION": "relative/cache"},
        fine={"BACKEND": backend, "LOCATION": str(tmp_path / "cache")},
    )
    found = sorted((m.id, m.msg.split("'")[1]) for m in messages)
    assert found == [
        ("cachekit_django.W002", "contains"),
        ("cachekit_django.W002", "contains"),  # both MEDIA_ROOT and STATICFILES_DIRS
        ("cachekit_django.W002", "inside"),
        ("cachekit_django.W003", "relative"),
    ]


@pytest.mark.servers
def test_djangos_documented_redis_options_work(settings: Any) -> None:
    """Review finding: Django's own example, ``OPTIONS={"db": "10"}``, failed E001. Django's
    RedisCache hands OPTIONS to redis-py's ``from_url``, where the URL wins: so here."""
    import redis

    from cachekit.testing.servers import RedisServer

    with RedisServer({"requirepass": "s3cr@t"}) as server:
        location = f"redis://{server.host}:{server.port}"
        entry = {"OPTIONS": {"db": "10", "password": "s3cr@t", "client_name": "web"}}
        settings.CACHES = {"r": {"BACKEND": "cachekit_django.cache.RedisCache",
                                 "LOCATION": location, **entry}}  # fmt: skip
        [warning] = [m for m in check_caches() if m.obj == "CACHES['r']"]
        assert warning.id == "cachekit_django.W001"
        assert "client_name" in warning.msg
        cache = RedisCache(location, entry)
        cache.set("k", "v")
        raw = redis.Redis(host=server.host, port=server.port, password="s3cr@t", db=10)
        assert raw.dbsize() == 1  # in database 10
        assert cache.get("k") == "v"
        cache.close()


def test_one_memory_name_with_different_options_is_a_warning(settings: Any) -> None:
    """Found by Django's own cache tests: LocMemCache shares a store by name alone; here a
    store has one bound, so different OPTIONS keep separate stores, and the check says so."""
    messages = _caches(
        settings,
        small={"BACKEND": MEMORY, "OPTIONS": {"MAX_ENTRIES": 9}},
        same={"BACKEND": MEMORY, "TIMEOUT": 60},  # TIMEOUT is per alias: one store with default
        other={"BACKEND": MEMORY, "LOCATION": "other", "OPTIONS": {"MAX_ENTRIES": 9}},
    )
    [warning] = messages
    assert warning.id == "cachekit_django.W004"
    assert "'default', 'same', 'small'" in warning.msg


def test_replicas_are_a_warning(settings: Any) -> None:
    [message] = _caches(
        settings,
        r={"BACKEND": "cachekit_django.cache.RedisCache", "LOCATION": "redis://a/0;redis://b/0"},
    )
    assert isinstance(message, Warning)
    assert message.id == "cachekit_django.W001"


def test_manage_py_check_fails_at_start_up(settings: Any) -> None:
    settings.CACHES = {"default": {"BACKEND": MEMORY, "OPTIONS": {"polcy": "lru"}}}
    with pytest.raises(SystemCheckError, match=r"cachekit_django\.E001"):
        call_command("check", verbosity=0)


def test_first_use_raises_djangos_configuration_error() -> None:
    # Building must not raise (Django's own checks build every cache before ours report), but
    # using the cache does, with Django's exception type.
    cache = MemoryCache("x", {"OPTIONS": {"polcy": "lru"}})
    assert cache.configuration_error is not None
    with pytest.raises(InvalidCacheConfiguration, match="polcy") as info:
        cache.get("k")
    assert info.value.key == "polcy"
    with pytest.raises(InvalidCacheConfiguration, match="polcy"):
        cache.set("k", 1)
    with pytest.raises(InvalidCacheConfiguration, match="LOCATION"):
        RedisCache("memcached://h:11211", {}).has_key("k")
    assert MemoryCache("fine", {}).configuration_error is None


def test_invalidation_settings_are_checked(settings: Any) -> None:
    settings.CACHEKIT_INVALIDATE_TAGS = {"auth.Group": "groups"}
    [message] = check_invalidation_settings()
    assert message.id == "cachekit_django.E005"
    assert "bare str" in message.msg
    settings.CACHEKIT_INVALIDATE_TAGS = {"Group": ["groups"]}
    assert check_invalidation_settings()[0].id == "cachekit_django.E005"
    settings.CACHEKIT_INVALIDATE_TAGS = {"auth.Group": {"tags": ["g"], "alias": "x"}}
    assert "unknown keys" in check_invalidation_settings()[0].msg
    settings.CACHEKIT_INVALIDATE_TAGS = {"auth.Group": {"tags": ["g:{pk}"], "cache": "default"}}
    assert check_invalidation_settings() == []
