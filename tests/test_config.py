"""URL parsing, option validation, the registries and ``create_cache``."""

from __future__ import annotations

import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import cachekit
from cachekit import ConfigurationError, create_cache
from cachekit.config import (
    bool_option,
    choice_option,
    int_option,
    parse_options,
    parse_url,
    seconds_option,
    size_option,
)
from cachekit.providers.memory import MemoryCache
from cachekit.registry import Registry

# -- URLs -------------------------------------------------------------------------------------


def test_parse_url_parts() -> None:
    url = parse_url("redis://user:p%40ss@cache.local:6380/2?serializer=json&socket_timeout=1.5")
    assert url.scheme == "redis"
    assert url.hosts == (("cache.local", 6380),)
    assert url.path == "2"
    assert (url.username, url.password) == ("user", "p@ss")
    assert url.options == {"serializer": "json", "socket_timeout": "1.5"}


def test_parse_url_several_hosts_and_ipv6() -> None:
    url = parse_url("memcached://a:11211,b,[::1]:11212")
    assert url.hosts == (("a", 11211), ("b", None), ("::1", 11212))
    assert url.path == ""


def test_parse_url_without_path() -> None:
    url = parse_url("memory://?max_entries=5")
    assert url.hosts == ()
    assert url.options == {"max_entries": "5"}
    assert parse_url("MEMORY://").scheme == "memory"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memory", "a cache URL looks like"),
        ("redis://host:port", "bad port"),
        ("redis://host:70000", "out of range"),
        ("memory://?a=1&a=2", "given twice"),
    ],
)
def test_parse_url_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_url(url)


# -- options ----------------------------------------------------------------------------------


def test_int_option() -> None:
    opt = int_option(minimum=1, allow_none=True)
    assert opt.parse("12") == 12
    assert opt.parse(None) is None
    assert opt.parse("unbounded") is None
    for bad in (0, True, 1.5, "x"):
        with pytest.raises((TypeError, ValueError)):
            opt.parse(bad)
    with pytest.raises(ValueError, match="<= 3"):
        int_option(maximum=3).parse(4)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(1024, 1024), ("64MB", 64 << 20), ("512k", 512 << 10), ("1GiB", 1 << 30), ("1.5kb", 1536)],
)
def test_size_option(raw: Any, expected: int) -> None:
    assert size_option().parse(raw) == expected


@pytest.mark.parametrize("raw", ["64XB", "lots", 0, True, 1.5, "-1"])
def test_size_option_rejects(raw: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        size_option().parse(raw)


def test_seconds_option() -> None:
    opt = seconds_option()
    assert opt.parse("1.5") == 1.5
    assert opt.parse(timedelta(minutes=1)) == 60.0
    assert opt.parse("none") is None
    for bad in ("0", -1, "inf", "nan", True, [1]):
        with pytest.raises((TypeError, ValueError)):
            opt.parse(bad)
    assert seconds_option(positive=False, allow_none=False).parse(0) == 0.0


def test_bool_option() -> None:
    opt = bool_option()
    assert [opt.parse(v) for v in ("1", "yes", "ON", True, "false", "0", False)] == [
        True,
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    with pytest.raises(ValueError, match="true or false"):
        opt.parse("maybe")


def test_choice_option_is_lazy_and_lists_choices() -> None:
    seen: list[str] = []
    opt = choice_option(lambda: seen or ["a", "b"])
    assert opt.parse("a") == "a"
    with pytest.raises(ConfigurationError, match="accepted values: a, b"):
        opt.parse("c")


def test_parse_options_names_the_key() -> None:
    table = {"size": size_option(), "flag": bool_option()}
    assert parse_options("x://", {"size": "1k"}, table) == {"size": 1024}
    with pytest.raises(ConfigurationError) as info:
        parse_options("x://", {"sise": "1k"}, table)
    assert info.value.key == "sise"
    assert "accepted options: flag, size" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        parse_options("x://", {"flag": "maybe"}, table)
    assert info.value.key == "flag"
    assert "x://: option 'flag'" in str(info.value)


# -- create_cache -------------------------------------------------------------------------------


def test_create_cache_from_url() -> None:
    cache = create_cache("memory://sessions?max_entries=10000&policy=adaptive&default_ttl=300")
    assert isinstance(cache, MemoryCache)
    assert cache.name == "sessions"
    assert cache.max_entries == 10000
    assert cache.policy.name == "adaptive"
    assert cache.default_ttl == 300.0


def test_create_cache_defaults_to_memory() -> None:
    assert isinstance(create_cache(), MemoryCache)
    assert isinstance(create_cache({"max_entries": 5}), MemoryCache)


def test_create_cache_dict_and_keyword_options_override_the_query() -> None:
    cache = create_cache({"url": "memory://?max_entries=5", "max_entries": 7}, policy="lfu")
    assert isinstance(cache, MemoryCache)
    assert cache.max_entries == 7
    assert cache.policy.name == "lfu"


@pytest.mark.parametrize(
    ("config", "key", "message"),
    [
        ("nosuch://host", "url", "unknown provider 'nosuch'; accepted: "),
        ("memory://?max_entrys=5", "max_entrys", "accepted options: "),
        ("memory://?policy=mru", "policy", "accepted values: adaptive, lfu, lru, ttl"),
        ("memory://?max_entries=-3", "max_entries", "must be >= 1"),
        ("memory://?max_memory_bytes=lots", "max_memory_bytes", "byte size"),
        ("memory://?default_ttl=0", "default_ttl", "must be positive"),
        ("memory://a/b", "url", "at most a name"),
        ({"url": 5}, "url", "must be a str"),
        # str() would have named these caches 'None' and "['a']"
        ({"url": "memory://", "name": None}, "name", "expected a string, not NoneType"),
        ({"url": "null://", "name": ["a"]}, "name", "expected a string, not list"),
        ({"url": "memcached://127.0.0.1:1", "compression": None}, "compression", "a string"),
    ],
)
def test_create_cache_errors_name_the_key(config: Any, key: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        create_cache(config)
    assert info.value.key == key


def test_create_cache_rejects_other_types() -> None:
    with pytest.raises(ConfigurationError, match="URL string or a dict"):
        create_cache(42)  # type: ignore[arg-type]


# -- registries ----------------------------------------------------------------------------------


def test_register_a_provider_object() -> None:
    class Named(MemoryCache):
        provider_name = "named"

    cachekit.provider_registry.register("named-test", Named)
    try:
        assert isinstance(create_cache("named-test://x"), Named)
        assert "named-test" in cachekit.provider_registry.names()
    finally:
        cachekit.provider_registry.register("named-test", "cachekit.providers.memory:MemoryCache")


def test_registry_import_errors_name_the_extra() -> None:
    registry: Registry[Any] = Registry("provider", "cachekit.test-none", {})
    registry.register("redis", "cachekit_no_such_module:Thing")
    with pytest.raises(ConfigurationError, match=r"pip install 'cachekit\[redis\]'"):
        registry.get("redis")


def test_entry_points_are_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A third-party distribution plugs in through its metadata, with no import of ours."""
    package = tmp_path / "thirdparty_cache"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            from cachekit.providers.memory import MemoryCache

            class ThirdParty(MemoryCache):
                provider_name = "thirdparty"
            """
        )
    )
    dist = tmp_path / "thirdparty_cache-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-cache\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[cachekit.test-providers]\nthirdparty = thirdparty_cache:ThirdParty\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry: Registry[Any] = Registry("provider", "cachekit.test-providers", {})
    assert registry.names() == ["thirdparty"]
    assert registry.get("thirdparty").provider_name == "thirdparty"
    sys.modules.pop("thirdparty_cache", None)


def test_core_imports_without_optional_drivers() -> None:
    """The bare install needs no driver: importing cachekit loads none of them."""
    import subprocess

    code = (
        "import sys, cachekit; c = cachekit.create_cache('memory://'); c.set('a', 1);"
        "bad = {'redis', 'pymemcache', 'grpc', 'prometheus_client', 'django', 'flask',"
        " 'orjson', 'msgpack', 'zstandard', 'google.protobuf'} & set(sys.modules);"
        "print(sorted(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "url", ["memory://a:1", "memory://n/path", "memory://u:p@n", "null://a,b", "null://x/y"]
)
def test_local_urls_take_only_a_name(url: str) -> None:
    with pytest.raises(ConfigurationError, match="takes at most a name") as caught:
        cachekit.create_cache(url)
    assert caught.value.key == "url"


def test_a_local_url_names_the_cache_unless_an_option_does() -> None:
    assert cachekit.create_cache("memory://pages?max_entries=5").name == "pages"
    assert cachekit.create_cache("memory://pages", name="other").name == "other"
    assert cachekit.create_cache("null://probe").name == "probe"
