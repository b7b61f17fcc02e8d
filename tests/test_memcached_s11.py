"""Regressions from a review of the memcached provider, against real ``memcached`` processes:
codec options beside a Serializer instance (ignored: a cache given ``secret=`` read unsigned
pickles), and a write refused as too large that left the previous value readable."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from cachekit import create_cache
from cachekit.errors import ConfigurationError, ValueTooLarge
from cachekit.providers.memcached import MemcachedCache
from cachekit.serialization import PickleSerializer
from cachekit.testing.servers import MemcachedServer

SECRET = "0123456789abcdef-secret"


def servers(server: MemcachedServer) -> list[tuple[str, int]]:
    return [(server.host, server.port)]


# -- 1: secret/compression beside a Serializer instance ------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("secret", SECRET),
        ("secret", SECRET.encode()),
        ("compression", "zlib"),
        ("compression", "auto"),  # the default, given explicitly: still not applied
        ("compress_threshold", 1024),  # likewise
        ("compress_threshold", 0),
    ],
)
def test_codec_options_beside_a_serializer_instance_raise(
    memcached_server: MemcachedServer, option: str, value: Any
) -> None:
    """As RedisCache and FileCache do: an option that cannot apply is an error naming it, not a
    cache that believes its values are signed and unpickles whatever the servers hold."""
    with pytest.raises(ConfigurationError, match="serializer given by name") as info:
        MemcachedCache(servers(memcached_server), serializer=PickleSerializer(), **{option: value})
    assert info.value.key == option
    # By name they apply, from keyword arguments, a URL and a dict alike.
    with MemcachedCache(servers(memcached_server), serializer="pickle", secret=SECRET) as cache:
        assert cache._serializer.signed
    url = f"memcached://{memcached_server.host}:{memcached_server.port}"
    for built in (
        create_cache(f"{url}?serializer=pickle&secret={SECRET}"),
        create_cache({"url": url, "secret": SECRET}),
    ):
        with built as cache:
            assert isinstance(cache, MemcachedCache)
            assert cache._serializer.signed


def test_a_serializer_instance_alone_is_used_as_given(memcached_server: MemcachedServer) -> None:
    serializer = PickleSerializer(secret=SECRET)
    with MemcachedCache(servers(memcached_server), serializer=serializer, secret=None) as cache:
        assert cache._serializer is serializer
        cache.set("k", [1, 2])
        assert cache.get("k") == [1, 2]
    with pytest.raises(ConfigurationError) as info:
        MemcachedCache(
            servers(memcached_server), serializer=serializer, compression="none", secret=SECRET
        )
    assert info.value.key in ("compression", "secret")


# -- 2: a value refused as too large leaves no stale value ---------------------------------------


def small_items(server: MemcachedServer, **options: Any) -> MemcachedCache:
    """A cache whose item size limit (4 KiB) refuses a 10 KB value before sending it."""
    return MemcachedCache(
        servers(server),
        prefix=f"s11-{os.urandom(4).hex()}:",
        max_item_size=4096,
        compression="none",
        **options,
    )


BIG = "x" * 10_000


def test_set_refused_by_the_client_deletes_the_previous_value(
    memcached_server: MemcachedServer,
) -> None:
    """memcached drops the previous value of a ``set`` it refuses, and ``set_many`` deletes one
    it refuses itself; ``set`` left it readable, so a reader saw the value the caller replaced."""
    with small_items(memcached_server) as cache:
        cache.set("k", "old")
        with pytest.raises(ValueTooLarge):
            cache.set("k", BIG)
        assert cache.get("k", "missing") == "missing"
        assert not cache.exists("k")

        cache.set("k", "old")
        with pytest.raises(ValueTooLarge):
            asyncio.run(cache.aset("k", BIG))
        assert cache.get("k", "missing") == "missing"

        # add stores only over an absent key: a present value is not stale to it, and stays.
        cache.set("k", "old")
        with pytest.raises(ValueTooLarge):
            cache.add("k", BIG)
        assert cache.get("k") == "old"


def test_replace_refused_by_the_client_deletes_the_previous_value(
    memcached_server: MemcachedServer,
) -> None:
    with small_items(memcached_server) as cache:
        cache.set("k", "old")
        with pytest.raises(ValueTooLarge):
            cache.replace("k", BIG)
        assert cache.get("k", "missing") == "missing"

        cache.set("k", "old")
        with pytest.raises(ValueTooLarge):
            asyncio.run(cache.areplace("k", BIG))
        assert cache.get("k", "missing") == "missing"


def test_replace_refused_by_the_server_deletes_the_previous_value(
    memcached_server: MemcachedServer,
) -> None:
    """memcached keeps the previous value of a ``replace`` it refuses (only a refused ``set``
    drops it), so the provider deletes it, as for a refusal of its own."""
    with MemcachedCache(
        servers(memcached_server),
        prefix=f"s11-{os.urandom(4).hex()}:",
        max_item_size=8 * 1024 * 1024,  # above the server's -I (1 MiB): the server refuses
        compression="none",
    ) as cache:
        big = os.urandom(2 * 1024 * 1024)
        cache.set("k", "old")
        with pytest.raises(ValueTooLarge):
            cache.set("k", big)
        assert cache.get("k", "missing") == "missing"
        cache.set("k", "old")
        with pytest.raises(ValueTooLarge):
            cache.replace("k", big)
        assert cache.get("k", "missing") == "missing"


def test_a_failed_delete_after_a_refusal_fails_closed_behind_the_refusal(
    fresh_memcached_server: MemcachedServer,
) -> None:
    """The caller still gets ValueTooLarge, what it did wrong; the outage that kept the old
    value from being deleted rides on it as a note."""
    with small_items(fresh_memcached_server, timeout=0.5, namespace_refresh=3600) as cache:
        cache.set("k", "old")
        fresh_memcached_server.kill()
        for write in (lambda: cache.set("k", BIG), lambda: cache.replace("k", BIG)):
            with pytest.raises(ValueTooLarge) as info:
                write()
            notes = getattr(info.value, "__notes__", [])
            assert any("previous value could not be deleted" in note for note in notes), notes


def test_a_failed_delete_after_a_refusal_fails_open_counted(
    fresh_memcached_server: MemcachedServer,
) -> None:
    with small_items(
        fresh_memcached_server, timeout=0.5, namespace_refresh=3600, fail_open=True
    ) as cache:
        cache.set("k", "old")
        fresh_memcached_server.kill()
        with pytest.raises(ValueTooLarge) as info:
            cache.set("k", BIG)
        assert not getattr(info.value, "__notes__", [])
        assert cache.get_stats().extra["fail_open_delete_errors_total"] == 1
