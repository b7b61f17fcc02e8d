"""Regression tests of the tiered near cache from a review: an L1 that refuses a value (over
its memory bound, or unserializable by its own serializer), a Redis ACL that grants exactly the
documented channel, and the documented L2 requirements.

Every test runs against real ``redis-server`` processes; "peers" are other TieredCache
instances over the same L2 namespace, each with its own L1 and subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from test_tiered import lone_tiered, wait_for

from cachekit import MISSING, ConfigurationError, create_cache
from cachekit.errors import SerializationError
from cachekit.providers.tiered import TieredCache
from cachekit.testing.servers import MemcachedServer, RedisServer

BOUND = 5.0
SMALL_L1 = "memory://?max_memory_bytes=10000"
JSON_L1 = "memory://?serializer=json"
BIG = "x" * 50_000
_names = itertools.count()


@pytest.fixture
def make(redis_server: RedisServer) -> Iterator[Callable[..., TieredCache]]:
    """Tiered caches sharing one fresh L2 namespace (each with its own L1), subscribed."""
    made: list[TieredCache] = []
    prefix = f"tieredreview{next(_names)}:"

    def make(**options: Any) -> TieredCache:
        cache = create_cache(
            {"url": "tiered://", "l2": {"url": redis_server.url, "prefix": prefix}, **options}
        )
        assert isinstance(cache, TieredCache)
        made.append(cache)
        assert cache.start(timeout=BOUND)
        return cache

    yield make
    for cache in made:
        with contextlib.suppress(Exception):
            cache.clear()
        cache.close()


def l1_holds(cache: TieredCache, key: str) -> bool:
    return cache.l1._peek(key) is not MISSING


# -- 1. a new value too big for L1 must not leave the old one there --------------------------


@pytest.mark.parametrize(
    "write",
    [
        lambda c, v: c.set("big", v),
        lambda c, v: c.set_many({"big": v}),
        lambda c, v: asyncio.run(c.aset("big", v)),
        lambda c, v: asyncio.run(c.aset_many({"big": v})),
        lambda c, v: c.replace("big", v),
        lambda c, v: asyncio.run(c.areplace("big", v)),
    ],
    ids=["set", "set_many", "aset", "aset_many", "replace", "areplace"],
)
def test_a_value_too_big_for_l1_evicts_the_writers_old_copy(
    make: Callable[..., TieredCache], write: Callable[[TieredCache, Any], Any]
) -> None:
    cache = make(l1=SMALL_L1, l1_ttl=60)
    cache.set("big", "small-old")
    assert cache.get("big") == "small-old"
    assert l1_holds(cache, "big")
    write(cache, BIG)
    assert cache.l2.get("big") == BIG
    assert not l1_holds(cache, "big")
    assert cache.get("big") == BIG


def test_a_too_big_value_in_a_batch_keeps_the_others_in_l1(
    make: Callable[..., TieredCache],
) -> None:
    cache = make(l1=SMALL_L1, l1_ttl=60)
    cache.set_many({"big": "small-old", "small": "old"})
    assert cache.set_many({"big": BIG, "small": "new"}) == []  # L2 stored both
    assert not l1_holds(cache, "big")
    assert cache.l1.get("small") == "new"
    assert cache.get("big") == BIG


# -- 2. an L2 value too big for L1 is returned, not raised -----------------------------------


@pytest.mark.parametrize(
    "read",
    [
        lambda c: c.get("big"),
        lambda c: c.get_many(["big"])["big"],
        lambda c: c.get_or_set("big", lambda: "computed"),
        lambda c: asyncio.run(c.aget("big")),
        lambda c: asyncio.run(c.aget_many(["big"]))["big"],
        lambda c: asyncio.run(c.aget_or_set("big", lambda: "computed")),
    ],
    ids=["get", "get_many", "get_or_set", "aget", "aget_many", "aget_or_set"],
)
def test_an_l2_value_too_big_for_l1_is_returned_without_a_fill(
    make: Callable[..., TieredCache], read: Callable[[TieredCache], Any]
) -> None:
    cache = make(l1=SMALL_L1, l1_ttl=60)
    cache.l2.set("big", BIG)
    assert read(cache) == BIG
    assert not l1_holds(cache, "big")
    assert read(cache) == BIG  # and again: still from L2


def test_an_l2_value_the_l1_cannot_serialize_is_returned_without_a_fill(
    make: Callable[..., TieredCache],
) -> None:
    cache = make(l1=JSON_L1, l1_ttl=60)
    cache.l2.set("s", {1, 2, 3})  # the L2 pickles; the L1's json cannot hold a set
    assert cache.get("s") == {1, 2, 3}
    assert cache.get_many(["s"]) == {"s": {1, 2, 3}}
    assert not l1_holds(cache, "s")


# -- 3. an L1 update that raises must still publish (and evict locally) ------------------------


@pytest.mark.parametrize(
    "write",
    [
        lambda c, v: c.set("d", v),
        lambda c, v: c.set_many({"d": v}),
        lambda c, v: c.replace("d", v),
        lambda c, v: asyncio.run(c.aset("d", v)),
        lambda c, v: asyncio.run(c.aset_many({"d": v})),
        lambda c, v: asyncio.run(c.areplace("d", v)),
    ],
    ids=["set", "set_many", "replace", "aset", "aset_many", "areplace"],
)
def test_a_write_whose_l1_update_raises_still_invalidates_the_peers(
    make: Callable[..., TieredCache], write: Callable[[TieredCache, Any], Any]
) -> None:
    writer = make(l1=JSON_L1, l1_ttl=60)
    reader = make(l1=JSON_L1, l1_ttl=60)
    writer.l2.set("d", "old")  # no invalidation in flight that could evict the fills below
    assert writer.get("d") == "old"
    assert reader.get("d") == "old"
    assert l1_holds(writer, "d")
    assert l1_holds(reader, "d")
    sent = writer.get_stats().extra["invalidations_sent"]
    with pytest.raises(SerializationError):
        write(writer, {1, 2, 3})  # L2 (pickle) stores it; the json L1 refuses it
    assert writer.l2.get("d") == {1, 2, 3}
    assert writer.get_stats().extra["invalidations_sent"] == sent + 1
    assert not l1_holds(writer, "d")  # the old value is not left behind
    assert writer.get("d") == {1, 2, 3}
    wait_for(lambda: not l1_holds(reader, "d"))
    assert reader.get("d") == {1, 2, 3}


@pytest.mark.parametrize(
    "add",
    [lambda c, v: c.add("n", v), lambda c, v: asyncio.run(c.aadd("n", v))],
    ids=["add", "aadd"],
)
def test_an_add_whose_l1_update_raises_still_publishes(
    make: Callable[..., TieredCache], add: Callable[[TieredCache, Any], Any]
) -> None:
    writer = make(l1=JSON_L1, l1_ttl=60)
    sent = writer.get_stats().extra["invalidations_sent"]
    with pytest.raises(SerializationError):
        add(writer, {1, 2, 3})
    assert writer.get_stats().extra["invalidations_sent"] == sent + 1
    assert writer.get("n") == {1, 2, 3}


# -- 4. an ACL granting exactly the documented channel -----------------------------------------


def test_an_acl_granting_only_the_documented_channel_keeps_the_near_cache(
    fresh_redis_server: RedisServer,
) -> None:
    host, port = fresh_redis_server.host, fresh_redis_server.port
    admin = redis.Redis(host=host, port=port)
    admin.execute_command(
        "ACL", "SETUSER", "u", "on", ">pw", "~*", "+@all", "resetchannels",
        "&cachekit:invalidate:t:",
    )  # fmt: skip
    admin.close()
    l2 = {"url": f"redis://u:pw@{host}:{port}/0", "prefix": "t:"}
    writer = create_cache({"url": "tiered://", "l2": l2, "l1_ttl": 60})
    reader = create_cache({"url": "tiered://", "l2": l2, "l1_ttl": 60})
    assert isinstance(writer, TieredCache)
    assert isinstance(reader, TieredCache)
    try:
        assert writer.channel == "cachekit:invalidate:t:"
        assert writer.start(timeout=BOUND)
        assert reader.start(timeout=BOUND)
        writer.set("k", "v1")
        # (a read racing the set's own invalidation may be evicted by it: read until filled)
        wait_for(lambda: reader.get("k") == "v1" and l1_holds(reader, "k"))
        writer.set("k", "v2")
        wait_for(lambda: reader.get("k") == "v2")
        assert writer.get_stats().extra["invalidation_publish_errors"] == 0
    finally:
        start = time.monotonic()
        writer.close()
        reader.close()
        assert time.monotonic() - start < BOUND  # stopped by the stop-flag poll


# -- 5. the L2 requirement is what the docs say ------------------------------------------------


def test_a_memcached_l2_is_refused_naming_what_l2_must_support(
    memcached_server: MemcachedServer,
) -> None:
    with pytest.raises(ConfigurationError, match="memcached") as info:
        create_cache({"url": "tiered://", "l2": memcached_server.url, "invalidation": "none"})
    assert info.value.key == "l2"


def test_a_flapping_subscriber_is_reported_once_per_interval(
    fresh_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Each resubscription reset the loss limiter: a connection killed every 0.3 s logged a
    loss and a resubscription per kill, against "at most once per LOG_INTERVAL"."""
    admin = redis.Redis(host=fresh_redis_server.host, port=fresh_redis_server.port)
    with (
        caplog.at_level("WARNING", logger="cachekit.providers.invalidation"),
        lone_tiered(fresh_redis_server, fail_open=True) as cache,
    ):
        for _ in range(4):
            wait_for(lambda: cache.subscriber_connected, timeout=BOUND)
            before = cache.get_stats().extra["subscriber_reconnects"]
            admin.client_kill_filter(_type="pubsub")
            wait_for(lambda b=before: cache.get_stats().extra["subscriber_reconnects"] > b)
        wait_for(lambda: cache.subscriber_connected, timeout=BOUND)
    admin.close()
    messages = [r.getMessage() for r in caplog.records if r.name.endswith("invalidation")]
    assert len([m for m in messages if " lost " in m]) == 1, messages
    assert len([m for m in messages if "resubscribed;" in m]) <= 1, messages


def test_a_malformed_tiered_url_never_echoes_its_l2_password() -> None:
    """The error quoted the raw URL, whose encoded l2= carried the Redis password."""
    secret = urllib.parse.quote("redis://:S3CRET@127.0.0.1:6379/0", safe="")
    with pytest.raises(ConfigurationError) as info:
        create_cache(f"tiered://somehost?l2={secret}")
    assert "S3CRET" not in str(info.value)
    assert info.value.key == "url"
