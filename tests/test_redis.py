"""Redis provider specifics on a real server: configuration, command use, namespaces, tags,
locks and stampede protection (the shared contract is in test_redis_contract.py)."""

from __future__ import annotations

import asyncio
import itertools
import pickle
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from cachekit import create_cache
from cachekit.errors import BackendUnavailable, ConfigurationError, NotAnInteger
from cachekit.providers import redis_wire as wire
from cachekit.providers.redis import RedisCache
from cachekit.providers.redis_lock import LockError, LockNotOwned
from cachekit.testing.servers import RedisSentinel, RedisServer

_names = itertools.count()


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    yield client
    client.close()


@pytest.fixture
def make(redis_server: RedisServer) -> Iterator[Any]:
    made: list[RedisCache] = []
    prefix = f"t{next(_names)}:"

    def make(**options: Any) -> RedisCache:
        options.setdefault("prefix", prefix)
        cache = RedisCache(redis_server.url, **options)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.clear()
        cache.close()


# -- configuration -------------------------------------------------------------------------


def test_import_cachekit_does_not_import_redis() -> None:
    code = "import sys, cachekit; cachekit.create_cache('memory://'); print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_construction_does_not_connect() -> None:
    # Nothing listens on port 1; building (and validating) must still succeed.
    cache = create_cache("redis://127.0.0.1:1/0?socket_connect_timeout=0.2&retries=0")
    assert isinstance(cache, RedisCache)
    with pytest.raises(BackendUnavailable) as info:
        cache.get("k")
    assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)


@pytest.mark.parametrize(
    ("url", "options", "key"),
    [
        ("redis://localhost/0?bogus=1", {}, "bogus"),
        ("redis://localhost/0", {"max_connections": 0}, "max_connections"),
        ("redis://localhost/0", {"fail_open": "perhaps"}, "fail_open"),
        ("redis://localhost/0", {"ssl_ca_certs": "/ca.pem"}, "ssl_ca_certs"),
        ("redis://localhost/0", {"prefix": ""}, "prefix"),
        ("redis://localhost/x", {}, "url"),
        ("redis://a:1,b:2/0", {}, "url"),
        ("redis+sentinel://a:1/", {}, "url"),
        ("unix://", {}, "url"),
        ("redis://localhost/0", {"db": 2}, "db"),
        ("rediss://localhost/0", {"ssl_cert_reqs": "sometimes"}, "ssl_cert_reqs"),
    ],
)
def test_bad_configuration_names_the_key(url: str, options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        create_cache(url, **options)
    assert info.value.key == key


def test_url_forms() -> None:
    assert "unix:///tmp/r.sock?db=3" in repr(create_cache("unix:///tmp/r.sock?db=3"))
    sentinel = create_cache("redis+sentinel://h1,h2:26380/mymaster/2")
    assert "redis+sentinel://h1:26379,h2:26380/mymaster/2" in repr(sentinel)
    tls = create_cache("rediss://u:p@h:6380/1?ssl_cert_reqs=none")
    assert "rediss://h:6380/1" in repr(tls)  # no credentials in reprs
    named = create_cache("redis://h/0", name="sessions")
    assert isinstance(named, RedisCache)
    assert named.prefix == "cachekit:sessions:"


# -- commands ---------------------------------------------------------------------------------


def _calls(raw: redis.Redis, command: str) -> int:
    stats = raw.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_get_many_is_one_mget(make: Any, raw: redis.Redis) -> None:
    cache = make()
    cache.set_many({f"k{i}": i for i in range(50)})
    before = _calls(raw, "mget"), _calls(raw, "get")
    assert cache.get_many([f"k{i}" for i in range(60)]) == {f"k{i}": i for i in range(50)}
    assert (_calls(raw, "mget"), _calls(raw, "get")) == (before[0] + 1, before[1])


def test_set_many_is_one_round_trip(make: Any, raw: redis.Redis) -> None:
    cache = make()
    before = _calls(raw, "evalsha") + _calls(raw, "eval")
    cache.set_many({f"k{i}": i for i in range(100)}, ttl=30)
    assert _calls(raw, "evalsha") + _calls(raw, "eval") == before + 1
    assert 29 < cache.ttl("k99") <= 30


def test_values_are_stored_for_incrby(make: Any, raw: redis.Redis) -> None:
    cache = make()
    cache.set("n", 41)
    assert raw.get(cache.prefix + "n") == b"41"
    assert raw.incrby(cache.prefix + "n", 1) == 42
    assert cache.get("n") == 42


def test_incr_of_a_missing_key_gets_the_default_ttl(make: Any) -> None:
    cache = make(default_ttl=30)
    assert cache.incr("n") == 1
    assert 29 < cache.ttl("n") <= 30
    cache.set("forever", 1, ttl=None)
    cache.incr("forever")
    assert cache.ttl("forever") is None
    cache.set("s", "text")
    with pytest.raises(NotAnInteger):
        cache.incr("s")
    # Also redis-py's ResponseError, as Django's RedisCache raises it (found by Django's tests).
    with pytest.raises(redis.exceptions.ResponseError):
        cache.incr("s")
    with pytest.raises(redis.exceptions.ResponseError):
        cache.incr("n", 1.5)
    with pytest.raises(redis.exceptions.ResponseError):
        cache.decr("n", 1.5)


def test_errors_that_are_also_redis_pys_have_a_repr_and_pickle() -> None:
    # RedisNotAnInteger's repr() raised: TypeError.__init__ skipped redis-py's, whose repr reads
    # what that sets (found as an asyncio Task repr crashing in a test).
    from cachekit.providers import redis_errors

    for name in redis_errors.__all__:
        error = getattr(redis_errors, name)("boom")
        assert name in repr(error)
        assert str(error) == "boom"
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert repr(copy) == repr(error)
        assert copy.args == error.args


def test_clear_and_delete_pattern_stay_in_the_prefix(make: Any, raw: redis.Redis) -> None:
    cache = make(prefix="we*ird[1]:")
    raw.set("weXird1:k", "outside")  # matches the prefix if its glob characters were not escaped
    raw.set("other:k", "outside")
    cache.set_many({"a": 1, "b": 2})
    cache.set("t", 1, tags=["x"])
    assert cache.delete_pattern("*") == 3
    cache.set("a", 1, tags=["x"])
    cache.clear()
    assert raw.get("weXird1:k") == b"outside"
    assert raw.get("other:k") == b"outside"
    assert [k for k in raw.scan_iter("we*") if not k.startswith(b"weX")] == []
    raw.delete("weXird1:k", "other:k")


def test_clear_never_flushes_unless_asked(make: Any, raw: redis.Redis) -> None:
    before = _calls(raw, "flushdb") + _calls(raw, "keys")
    make().clear()
    assert _calls(raw, "flushdb") + _calls(raw, "keys") == before


def test_stats(make: Any) -> None:
    cache = make()
    cache.set("a", 1, tags=["t"])
    cache.get("a")
    stats = cache.get_stats()
    assert stats.items == 1  # the tag bookkeeping keys are not items
    assert stats.memory_bytes > 0
    assert stats.extra["breaker_state"] == 0
    assert stats.extra["db_keys"] >= 1


# -- tags -------------------------------------------------------------------------------------


def test_tag_sets_expire_with_their_members(make: Any, raw: redis.Redis) -> None:
    cache = make()
    cache.set("short", 1, ttl=5, tags=["t"])
    cache.set("long", 1, ttl=50, tags=["t"])
    tag_key = cache._tag_prefix + "t"
    assert 49 < raw.pttl(tag_key) / 1000 <= 50  # at least the longest member's TTL
    cache.set("forever", 1, ttl=None, tags=["t"])
    assert raw.pttl(tag_key) == -1
    assert cache.invalidate_tags(["t"]) == 3
    assert list(raw.scan_iter(cache._meta + "*")) == []  # nothing left behind


def test_overwrite_and_delete_clean_tag_bookkeeping(make: Any, raw: redis.Redis) -> None:
    cache = make()
    cache.set("a", 1, tags=["t1", "t2"])
    cache.set("a", 2)  # untagged: drops the side key, leaves stale members in the tag sets
    assert raw.exists(cache._side_prefix + "a") == 0
    assert cache.invalidate_tags(["t1", "t2"]) == 0  # stale members are skipped...
    assert cache.get("a") == 2
    assert list(raw.scan_iter(cache._meta + "*")) == []  # ...and dropped with their sets
    cache.set("b", 1, tags=["t1"])
    cache.delete("b")
    assert list(raw.scan_iter(cache._meta + "*")) == []
    cache.set("big", b"x" * 100_000, tags=["t1"])  # over one send: MULTI/EXEC
    cache.set("big", b"y" * 100_000)
    assert raw.exists(cache._side_prefix + "big") == 0
    assert cache.invalidate_tags(["t1"]) == 0
    assert cache.get("big") == b"y" * 100_000


def test_touch_extends_the_tag_set(make: Any, raw: redis.Redis) -> None:
    cache = make()
    cache.set("a", 1, ttl=5, tags=["t"])
    assert cache.touch("a", ttl=100)
    assert raw.pttl(cache._tag_prefix + "t") / 1000 > 99
    assert raw.pttl(cache._side_prefix + "a") / 1000 > 99


# -- locks and stampede protection -----------------------------------------------------------


def test_lock_excludes_other_clients_and_releases_safely(make: Any) -> None:
    one, two = make(), make()
    with one.lock("job", timeout=5):
        assert two.lock("job", blocking_timeout=0.1).acquire() is False
        with pytest.raises(LockError), two.lock("job", blocking_timeout=0.1):
            pass  # pragma: no cover
        with pytest.raises(LockNotOwned):
            two.lock("job").release()  # a non-owner cannot release it
    assert two.lock("job", blocking_timeout=0.1).acquire() is True


def test_an_expired_lock_cannot_be_released_by_its_old_holder(make: Any) -> None:
    one, two = make(), make()
    mine = one.lock("job", timeout=0.1)
    assert mine.acquire()
    time.sleep(0.2)
    theirs = two.lock("job", timeout=5)
    assert theirs.acquire(blocking_timeout=0.5)
    with pytest.raises(LockNotOwned):
        mine.release()
    assert theirs.owned()
    theirs.release()


def test_stampede_protection_across_clients(make: Any) -> None:
    caches = [make() for _ in range(4)]  # separate pools: the in-process single-flight can't help
    calls: list[int] = []
    start = threading.Barrier(len(caches))
    results: list[Any] = []

    def factory() -> str:
        calls.append(1)
        time.sleep(0.3)
        return "value"

    def work(cache: RedisCache) -> None:
        start.wait()
        results.append(cache.get_or_set("hot", factory, ttl=30))

    threads = [threading.Thread(target=work, args=(c,)) for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["value"] * len(caches)
    assert calls == [1]


def test_stampede_falls_back_when_the_lock_holder_dies(make: Any, raw: redis.Redis) -> None:
    cache = make(stampede_timeout=0.3)
    # A holder that died: its lock stays until it expires.
    raw.set(cache._meta + "s:hot", "dead-holder", px=300)
    t0 = time.monotonic()
    assert cache.get_or_set("hot", lambda: "mine") == "mine"
    assert time.monotonic() - t0 < 5  # bounded: not stuck behind the dead holder


def test_async_twins_on_a_real_server(make: Any) -> None:
    one, two = make(), make()
    calls: list[int] = []

    async def factory() -> int:
        calls.append(1)
        await asyncio.sleep(0.2)
        return 7

    async def scenario() -> None:
        await one.aset_many({"a:1": 1, "a:2": 2, "b": 3}, tags=["t"])
        assert await one.aget_many(["a:1", "a:2", "b", "c"]) == {"a:1": 1, "a:2": 2, "b": 3}
        assert await one.adelete_pattern("a:*") == 2
        assert await one.ainvalidate_tags(["t"]) == 1
        got = await asyncio.gather(one.aget_or_set("hot", factory), two.aget_or_set("hot", factory))
        assert got == [7, 7]
        async with one.alock("job", timeout=5):
            assert await two.alock("job", blocking_timeout=0.05).acquire() is False
        await one.aclose()
        await two.aclose()

    asyncio.run(scenario())
    assert calls == [1]


def test_fail_open_add_and_incr_do_not_pretend() -> None:
    cache = RedisCache(
        "redis://127.0.0.1:1/0", fail_open=True, retries=0, socket_connect_timeout=0.2
    )
    assert cache.get("k", "miss") == "miss"
    assert cache.add("k", 1) is False  # not stored: never reported as stored
    with pytest.raises(BackendUnavailable):
        cache.incr("n")  # there is no honest number to return
    assert cache.set_many({"a": 1}) == ["a"]  # the keys that were not stored


# -- the plain write path (large untagged values: MULTI; UNTAG; SET PX; EXEC) ----------------------


@pytest.mark.parametrize("many", [False, True])
def test_large_untagged_overwrite_removes_tags(make: Any, raw: redis.Redis, many: bool) -> None:
    cache = make(compression="none")
    big = b"x" * (cache.plain_write_min + 10)
    cache.set_many({"a": 1, "b": 2}, ttl=50, tags=["t1", "t2"])
    if many:
        assert cache.set_many({"a": big, "b": big}, ttl=20) == []
    else:
        cache.set("a", big, ttl=20)
        cache.set("b", big, ttl=20)
    assert raw.exists(cache._side_prefix + "a", cache._side_prefix + "b") == 0  # untagged
    assert cache.invalidate_tags(["t1", "t2"]) == 0
    assert list(raw.scan_iter(cache._meta + "*")) == []  # stale members went with their sets
    assert cache.get_many(["a", "b"]) == {"a": big, "b": big}
    assert 19 < cache.ttl("a") <= 20
    cache.set("a", big, ttl=None)
    assert cache.ttl("a") is None
    assert cache.get_stats().sets == 5


def test_writes_reload_a_flushed_script(make: Any, raw: redis.Redis) -> None:
    cache = make(compression="none")
    big = b"y" * (cache.plain_write_min + 1)
    cache.set("a", 1, tags=["t"])
    raw.script_flush()
    cache.set("a", big)
    cache.set_many({"c": 1, "d": 2}, tags=["u"])  # the store script, reloaded
    assert cache.get("a") == big
    assert cache.invalidate_tags(["t"]) == 0
    assert cache.invalidate_tags(["u"]) == 2
    assert list(raw.scan_iter(cache._meta + "*")) == []


def test_set_keeps_rejecting_a_bare_string_of_tags(make: Any) -> None:
    with pytest.raises(TypeError):
        make().set("a", 1, tags="t")


def test_a_refused_untagged_write_keeps_the_old_values_tags(make: Any, raw: redis.Redis) -> None:
    """Review finding: DEL <side key> ran and the SET did not, so the old value escaped tag
    invalidation. Now the pair is one transaction, and out-of-range TTLs never reach Redis."""
    from cachekit.errors import CacheError, InvalidArgument

    cache = make()
    cache.set("k", "old", tags=["T"])
    with pytest.raises(InvalidArgument):
        cache.set("k", "new", ttl=10**16)  # beyond Redis's expiry range
    raw.config_set("maxmemory", 1)  # over maxmemory: every write is refused at queue time
    try:
        with pytest.raises(CacheError):
            cache.set("k", "new")
        with pytest.raises(CacheError):
            cache.set_many({"k": "x" * 5000, "j": "y" * 5000})
    finally:
        raw.config_set("maxmemory", 0)
    assert cache.get("k") == "old"
    assert cache.invalidate_tags(["T"]) == 1
    assert cache.get("k") is None


# -- large values read by redis_wire (one copy, no header), and health checks ----------------------

BIG = wire.READ_FROM * 3


def _mixed(size: int = BIG) -> tuple[list[str], dict[str, Any]]:
    """Keys (a missing one, a repeated one) and what get_many must return for them: large and
    small bytes (the envelope-free read), a compressible value, pickled objects, an int."""
    values: dict[str, Any] = {
        # incompressible (random), so stored large under every serializer option
        "big": b"\x01" * 4 + random.Random(size).randbytes(size),
        "odd": bytes(range(7)) * (size // 7 + 1),  # not a multiple of any buffer size
        "tiny": b"t",
        "empty": b"",
        "zeros": b"\x00" * size,  # compressible: stored compressed unless compression=none
        "obj": {"blob": b"o" * size},
        "small-obj": ["x"],
        "num": 12345,
        "huge": b"h" * (wire.BUFFER_SIZE + 1000),  # larger than the read buffer
    }
    keys = ["big", "missing", *values.keys(), "big", "obj"]
    return keys, values


def _hints(cache: RedisCache) -> tuple[bool, bool]:
    """Whether the next get / get_many is read by redis_wire."""
    return cache._large_gets, cache._large_mgets


def _stats(cache: RedisCache) -> tuple[int, int]:
    stats = cache.get_stats()
    return stats.hits, stats.misses


@pytest.mark.parametrize(
    "options",
    [{}, {"compression": "none"}, {"secret": "s" * 32}],
    ids=["default", "uncompressed", "signed"],
)
def test_large_values_read_by_redis_wire_match_hiredis(make: Any, options: dict[str, Any]) -> None:
    cache = make(**options)
    keys, values = _mixed()
    cache.set_many(values)
    cache._large_mgets = False  # hiredis reads this one (and finds the first value large)...
    before = _stats(cache)
    by_hiredis = cache.get_many(keys)
    counted = _stats(cache)
    assert _hints(cache)[1]  # ...so redis_wire reads the next
    direct = cache.get_many(keys)
    assert direct == by_hiredis == values
    assert list(direct) == list(by_hiredis)  # the same order too
    assert _stats(cache) == (2 * counted[0] - before[0], 2 * counted[1] - before[1])
    raws, enveloped = cache._mget_raw(keys)
    assert enveloped is not None  # read by redis_wire
    if "secret" not in options:  # the unsigned bytes come without their 4-byte header
        assert raws[0] == values["big"]
    for key in values:
        cache._large_gets = True
        assert cache.get(key, "miss") == values[key]
    cache._large_gets = True
    assert cache.get("missing", "miss") == "miss"
    assert _hints(cache)[0]  # a miss says nothing about sizes


@pytest.mark.parametrize("transport", ["unix", "tls", "sentinel"])
def test_large_values_over_every_transport(request: pytest.FixtureRequest, transport: str) -> None:
    options: dict[str, Any] = {"prefix": f"t{next(_names)}:"}
    if transport == "unix":
        url = request.getfixturevalue("redis_unix_server")
    elif transport == "tls":
        server = request.getfixturevalue("redis_tls_server")
        url, options["ssl_ca_certs"] = server.url, str(server.ca_certs)
    else:
        url = request.getfixturevalue("redis_sentinel").url
    cache = RedisCache(url, **options)
    try:
        keys, values = _mixed()
        cache.set_many(values)
        assert cache.get_many(keys) == values  # by hiredis...
        assert _hints(cache)[1]
        assert cache.get_many(keys) == values  # ...then by redis_wire
        for key in values:
            assert cache.get(key) == values[key]
    finally:
        cache.clear()
        cache.close()


def test_sentinels_requiring_a_password(redis_binary: str) -> None:
    """``sentinel_password`` authenticates to the sentinels (the URL's credentials are the
    master's, as in redis-py); without it the cache cannot find its master, and says so."""
    with (
        RedisServer(binary=redis_binary) as master,
        RedisSentinel(master, binary=redis_binary, password="s p+w") as sentinel,
    ):
        assert "sentinel_password=s%20p%2Bw" in sentinel.url
        cache = RedisCache(sentinel.url, prefix="sentinel-auth:")
        try:
            cache.set("k", 1)
            assert cache.get("k") == 1
            assert asyncio.run(cache.aget("k")) == 1
        finally:
            cache.close()
        bare = RedisCache(sentinel.url.partition("?")[0], prefix="sentinel-auth:")
        try:
            with pytest.raises(BackendUnavailable):
                bare.get("k")
        finally:
            bare.close()


def test_sentinel_credentials_need_a_sentinel_url() -> None:
    with pytest.raises(ConfigurationError, match=r"need a redis\+sentinel:// URL") as info:
        RedisCache("redis://127.0.0.1:1/0?sentinel_password=x")
    assert info.value.key == "sentinel_password"


@pytest.mark.parametrize("extra", [0, 1, 50, 4000])
def test_redis_wire_reads_replies_split_anywhere(
    make: Any, monkeypatch: pytest.MonkeyPatch, extra: int
) -> None:
    """With a tiny read buffer every line and value is split between reads, and most values
    need a buffer of their own; with a few KB some are moved to its front instead."""
    cache = make(compression="none")
    keys, values = _mixed(size=40)
    values["first"] = b"f" * BIG  # the first value is large: redis_wire reads the reply
    keys.insert(0, "first")
    cache.set_many(values)
    # The smallest buffer whose first read shows the first value's size: "*14\r\n$6148\r\n".
    head = len(f"*{len(keys)}\r\n${len(values['first']) + 4}\r\n")
    monkeypatch.setattr(wire, "BUFFER_SIZE", head + extra)
    monkeypatch.setattr(wire, "_free_buffers", [])  # none kept: the next read makes one
    cache._large_mgets = True
    assert cache._mget_raw(keys)[1] is not None  # read here, not by hiredis
    cache._large_mgets = True
    assert cache.get_many(keys) == values
    assert cache.get_many(keys) == values


def test_read_buffers_are_shared_not_per_thread(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads (or greenlets) that read large values one after another reuse one buffer: the
    buffers kept number the reads in flight at once, not the threads that ever read."""
    cache = make(compression="none")
    cache.set_many({"a": b"a" * BIG, "b": b"b" * BIG})
    free: list[bytearray] = []
    monkeypatch.setattr(wire, "_free_buffers", free)
    seen: list[int] = []

    def read() -> None:
        cache._large_mgets = True
        assert cache.get_many(["a", "b"]) == {"a": b"a" * BIG, "b": b"b" * BIG}
        seen.extend(map(id, free))

    for _ in range(20):
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
    assert len(free) == 1  # one buffer, whatever the thread
    assert len(set(seen)) == 1


def test_small_values_go_back_to_hiredis(make: Any) -> None:
    cache = make(compression="none")
    cache.set_many({"big": b"b" * BIG, "small": b"s"})
    assert cache.get_many(["big"]) == {"big": b"b" * BIG}
    assert _hints(cache) == (False, True)
    assert cache.get_many(["small", "big"]) == {"small": b"s", "big": b"b" * BIG}
    assert _hints(cache) == (False, False)  # its first value was small: hiredis read it
    assert cache.get("big") == b"b" * BIG
    assert _hints(cache) == (True, False)
    assert cache.get("small") == b"s"
    assert _hints(cache) == (False, False)


def test_a_timeout_on_a_large_read_drops_the_connection(make: Any, raw: redis.Redis) -> None:
    """The reply the server sends late must never be read as the next command's."""
    cache = make(compression="none", socket_timeout=0.2, retries=0)
    cache.set_many({"a": b"a" * BIG, "b": b"b" * BIG})
    assert cache.get_many(["a", "b"]) == {"a": b"a" * BIG, "b": b"b" * BIG}
    assert cache._large_mgets is True
    raw.client_pause(1500)  # the connection is up: the pause holds MGET's reply back
    try:
        with pytest.raises(BackendUnavailable) as info:
            cache.get_many(["a", "b"])
        cause = info.value.__cause__
        assert isinstance(cause, redis.exceptions.TimeoutError)
        assert str(cause) == "Timeout reading from socket"  # as redis-py's hiredis parser says
    finally:
        raw.client_unpause()
    assert cache.get_many(["b", "a"]) == {"b": b"b" * BIG, "a": b"a" * BIG}


def test_an_error_reply_on_the_large_read_path_is_redis_pys(
    make: Any, raw: redis.Redis, redis_server: RedisServer
) -> None:
    from cachekit.errors import CacheError

    user = f"reader{next(_names)}"
    raw.acl_setuser(user, enabled=True, passwords=[f"+{user}"], keys=["*"], commands=["+@all"])
    try:
        url = f"redis://{user}:{user}@{redis_server.host}:{redis_server.port}/0"
        cache = make(compression="none")
        cache.set_many({"a": b"a" * BIG})
        reader = RedisCache(url, prefix=cache.prefix, retries=0)
        assert reader.get_many(["a"]) == {"a": b"a" * BIG}
        raw.acl_setuser(user, commands=["-mget"])  # the open connection loses MGET
        messages = []
        for large in (True, False):
            reader._large_mgets = large
            with pytest.raises(CacheError) as info:
                reader.get_many(["a"])
            assert isinstance(info.value.__cause__, redis.exceptions.NoPermissionError)
            messages.append(str(info.value))
        assert messages[0] == messages[1]
        assert reader.get("a") == b"a" * BIG  # the connection is still in a clean state
        reader.close()
    finally:
        raw.acl_deluser(user)


@pytest.fixture
def quiet(fresh_redis_server: RedisServer) -> Iterator[tuple[Any, redis.Redis]]:
    """A server of the test's own (no other client's PING in its counters): a cache maker
    and an observer without health checks."""
    made: list[RedisCache] = []

    def make(**options: Any) -> RedisCache:
        made.append(RedisCache(fresh_redis_server.url, **options))
        return made[-1]

    observer = redis.Redis(host=fresh_redis_server.host, port=fresh_redis_server.port)
    yield make, observer
    observer.close()
    for cache in made:
        cache.close()


def _pings(raw: redis.Redis) -> int:
    return _calls(raw, "ping")


@pytest.mark.parametrize("large", [False, True])
def test_hand_packed_commands_honour_health_check_interval(
    quiet: tuple[Any, redis.Redis], large: bool
) -> None:
    """redis-py PINGs a connection idle for longer than health_check_interval before using it;
    so do the commands redis_wire packs (GET, MGET read by hiredis or by redis_wire, and the
    untagged set's transaction)."""
    make, raw = quiet
    value = b"v" * BIG if large else b"v"
    cache = make(compression="none", health_check_interval=0.3, max_connections=1)
    cache.set_many({"a": value, "b": value})
    calls: list[Callable[[], object]] = [
        lambda: cache.get("a"),
        lambda: cache.get_many(["a", "b"]),
        lambda: cache.set("c", value),
    ]
    for call in calls:
        call()  # large values: this read switches the next to redis_wire's
        time.sleep(0.4)  # idle past the interval
        before = _pings(raw)
        call()
        assert _pings(raw) == before + 1
    assert _hints(cache) == (large, large)


def test_no_health_checks_without_the_interval_or_before_it(
    quiet: tuple[Any, redis.Redis],
) -> None:
    make, raw = quiet
    for cache in (make(), make(health_check_interval=3600)):
        cache.set_many({"a": b"a" * BIG})
        cache.get_many(["a"])
        cache.get("a")
        time.sleep(0.05)
        before = _pings(raw)
        for _ in range(2):
            cache.get("a")
            cache.get_many(["a"])
            cache.set("b", 1)
        assert _pings(raw) == before


def test_the_longest_ttl_taken_works_in_every_write_path(make: Any) -> None:
    """A Lua script hands numbers to Redis as "%.17g": a TTL of 1e14 s (1e17 ms) reached
    PEXPIRE as "1e+17" and set_many, tagged writes, add and touch failed halfway, while a plain
    set took it. Every TTL accepted now works everywhere; a longer one is refused up front."""
    from cachekit.errors import InvalidArgument
    from cachekit.providers.redis_scripts import MAX_PX

    cache = make()
    with pytest.raises(InvalidArgument):
        cache.set_many({"a": 1}, ttl=1e14)
    for huge in (1e308, 1e300):  # round(1e308 * 1000) raised a bare OverflowError
        with pytest.raises(InvalidArgument):
            cache.set("a", 1, ttl=huge)
    longest = MAX_PX / 1000
    assert cache.set_many({"a": 1}, ttl=longest) == []
    cache.set("t", 1, ttl=longest, tags=["x"])
    assert cache.add("n", 1, ttl=longest) is True
    assert cache.touch("t", longest) is True
    assert cache.ttl("t") == pytest.approx(longest, rel=1e-6)


@pytest.mark.parametrize("pair", [("app1", "app2"), ("shop_", "shop:"), ("a", "b")])
def test_prefixes_differing_in_their_last_character_keep_their_own_tags(
    make: Any, pair: tuple[str, str]
) -> None:
    """The meta namespace replaced the prefix's last character: app1/app2 shared one tag
    index, and one cache's invalidate_tags consumed the other's, which then served stale."""
    n = next(_names)
    one, two = (make(prefix=f"mp{n}{prefix}") for prefix in pair)
    one.set("k", "one", tags=["catalog"])
    two.set("k", "two", tags=["catalog"])
    assert one.invalidate_tags(["catalog"]) == 1
    assert two.get("k") == "two"  # untouched by the other cache
    assert two.invalidate_tags(["catalog"]) == 1
    assert two.get("k") is None
    one.set("j", 1, tags=["t"])
    two.clear()
    assert one.invalidate_tags(["t"]) == 1  # its tag index survived the other's clear


def test_a_waiter_in_this_process_waits_no_longer_than_stampede_timeout(make: Any) -> None:
    """The in-process wait for a leader is the cache's stampede_timeout, as the wait across
    processes is (it was the single-flight's own 10 s, whatever the option said)."""
    cache = make(stampede_timeout=0.3)
    release = threading.Event()
    leader = threading.Thread(
        target=lambda: cache.get_or_set("slow", lambda: release.wait(30) and "leader"),
        daemon=True,
    )
    leader.start()
    while not cache._single_flight._calls:  # the leader is computing
        time.sleep(0.01)
    got: list[Any] = []
    waiter = threading.Thread(
        target=lambda: got.append(cache.get_or_set("slow", lambda: "waiter")), daemon=True
    )
    waiter.start()
    waiter.join(5)  # well under the single-flight's default 10 s
    release.set()
    leader.join(30)
    assert got == ["waiter"]
