"""``LOCATION``/``OPTIONS`` translation: each named backend takes the forms of the Django
backend it replaces, so switching is a one-line change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cachekit.errors import ConfigurationError
from cachekit_django.locations import plan


@pytest.mark.parametrize(
    ("location", "url"),
    [
        ("", "memory://"),
        ("unique-snowflake", "memory://"),
        ("memory://named?policy=lfu", "memory://named?policy=lfu"),
    ],
)
def test_memory(location: str, url: str) -> None:
    result = plan("memory", location, {})
    assert result.url == url
    if "://" not in location:
        assert result.options["name"] == (location or "default")
        assert result.cull == (300, 3)


def test_memory_native_bounds_turn_culling_off() -> None:
    assert plan("memory", "memory://?max_entries=5", {}).cull is None
    assert plan("memory", "n", {"OPTIONS": {"max_memory_bytes": "1MB"}}).cull is None
    assert plan("memory", "n", {"OPTIONS": {"MAX_ENTRIES": 9, "CULL_FREQUENCY": 0}}).cull == (9, 0)


@pytest.mark.parametrize(
    ("location", "url", "notes"),
    [
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379", 0),
        ("rediss://:pw@h:6380/2", "rediss://:pw@h:6380/2", 0),
        ("unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=1", 0),
        ("redis://a:6379/0,redis://b:6379/0", "redis://a:6379/0", 1),
        (["redis://a:6379/0", "redis://b:6379/0"], "redis://a:6379/0", 1),
        ("redis+sentinel://s1:26379/mymaster/0", "redis+sentinel://s1:26379/mymaster/0", 0),
    ],
)
def test_redis(location: str | list[str], url: str, notes: int) -> None:
    result = plan("redis", location, {})
    assert result.url == url
    assert len(result.notes) == notes


@pytest.mark.parametrize(
    ("location", "url"),
    [
        ("127.0.0.1:11211", "memcached://127.0.0.1:11211"),
        ("a:11211;b:11212", "memcached://a:11211,b:11212"),
        ("a:11211,b:11212", "memcached://a:11211,b:11212"),
        (["a:11211", "b:11212"], "memcached://a:11211,b:11212"),
        ("memcached://a:1,b:2?key_policy=reject", "memcached://a:1,b:2?key_policy=reject"),
    ],
)
def test_memcached(location: str | list[str], url: str) -> None:
    assert plan("memcached", location, {}).url == url


def test_memcached_pymemcache_options() -> None:
    options = {"ignore_exc": True, "no_delay": True, "use_pooling": True, "max_pool_size": 4}
    result = plan("memcached", "h:11211", {"OPTIONS": options})
    assert result.options == {"fail_open": True, "max_pool_size": 4}
    # HashClient's names for several servers: dead_timeout is cachekit's dead_retry;
    # retry_timeout has no counterpart and becomes a check warning (W001).
    hashed = plan("memcached", "a:1;b:2", {"OPTIONS": {"dead_timeout": 30, "retry_timeout": 1}})
    assert hashed.options == {"dead_retry": 30}
    assert len(hashed.notes) == 1
    assert "retry_timeout" in hashed.notes[0]
    with pytest.raises(ConfigurationError, match="default_noreply") as info:
        plan("memcached", "h:11211", {"OPTIONS": {"default_noreply": True}})
    assert info.value.key == "default_noreply"


@pytest.mark.parametrize(
    "location",
    [
        "a:7000,b:7001",
        ["a:7000", "b:7001"],
        "redis://a:7000/0;redis://b:7001",
        "redis+cluster://a:7000,b:7001",
    ],
)
def test_cluster(location: str | list[str]) -> None:
    assert plan("redis+cluster", location, {}).url == "redis+cluster://a:7000,b:7001"


def test_cachekit_takes_any_url_and_applies_its_providers_rules() -> None:
    assert plan("cachekit", "memory://x", {}).cull == (300, 3)
    assert plan("cachekit", "redis://h/0", {}).scheme == "redis"
    with pytest.raises(ConfigurationError, match="cachekit URL"):
        plan("cachekit", "h:6379", {})
    with pytest.raises(ConfigurationError, match="OPTIONS must be a dict"):
        plan("cachekit", "memory://", {"OPTIONS": ["max_entries"]})


def test_file_takes_filebasedcache_directories_and_urls(tmp_path: Path) -> None:
    relative = plan("file", "django_cache", {})
    assert (relative.url, relative.scheme) == ("file://", "file")
    assert relative.options == {"directory": os.path.abspath("django_cache"), "max_entries": 300}
    bounded = plan("file", str(tmp_path), {"OPTIONS": {"MAX_ENTRIES": 50}})
    assert bounded.options == {"directory": str(tmp_path), "max_entries": 50}
    assert not bounded.notes
    url = plan("file", f"file://{tmp_path}?max_entries=9", {})
    assert url.url == f"file://{tmp_path}?max_entries=9"
    assert "max_entries" not in url.options  # the URL's own bound stands
    culled = plan("file", str(tmp_path), {"OPTIONS": {"CULL_FREQUENCY": 4}})
    assert len(culled.notes) == 1  # accepted, not used: a system-check warning says so


@pytest.mark.parametrize(
    ("location", "options", "key"),
    [
        ("", {}, "LOCATION"),
        ("/tmp/x", {"MAX_ENTRIES": 0}, "MAX_ENTRIES"),
        ("/tmp/x", {"MAX_ENTRIES": 5, "max_entries": 5}, "MAX_ENTRIES"),
        ("/tmp/x", {"CULL_FREQUENCY": "often"}, "CULL_FREQUENCY"),
        ("memory://", {}, "LOCATION"),
    ],
)
def test_file_refuses(location: str, options: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        plan("file", location, {"OPTIONS": options})
    assert caught.value.key == key
