"""The memcached provider beyond the contract: configuration, key policy, large values, TTL
conversion, namespaces and placement, all against real ``memcached`` processes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cachekit import create_cache
from cachekit.errors import ConfigurationError, InvalidKey, NotAnInteger, ValueTooLarge
from cachekit.providers.memcached import MAX_KEY_LENGTH, MemcachedCache
from cachekit.sentinels import MISSING
from cachekit.testing.servers import MemcachedServer


def raw(server: MemcachedServer, command: bytes, until: bytes = b"\r\n") -> bytes:
    """One text-protocol exchange with the server, bypassing cachekit."""
    with socket.create_connection((server.host, server.port), timeout=2) as sock:
        sock.sendall(command)
        data = b""
        while not data.endswith(until):
            data += sock.recv(65536)
        return data


def manifest_base(server: MemcachedServer, cache: MemcachedCache, key: str) -> bytes:
    """The chunk-key base named by the manifest stored under ``key``."""
    reply = raw(server, b"get " + cache._key(key) + b"\r\n", until=b"END\r\n")
    header, manifest = reply.split(b"\r\n")[:2]
    assert header.split()[2] == b"1"  # client flags: a chunk manifest
    return manifest.split(b" ")[4]


@pytest.fixture
def make(memcached_server: MemcachedServer) -> Iterator[Any]:
    made: list[MemcachedCache] = []

    def build(**options: Any) -> MemcachedCache:
        cache = create_cache(memcached_server.url, **options)
        assert isinstance(cache, MemcachedCache)
        made.append(cache)
        return cache

    yield build
    for cache in made:
        cache.clear()
        cache.close()


# -- configuration ----------------------------------------------------------------------------


def test_url_with_several_servers_and_options() -> None:
    cache = create_cache(
        "memcached://127.0.0.1:1,127.0.0.1:2,localhost?prefix=app:&default_ttl=60&timeout=0.5"
        "&key_policy=reject&large_values=chunk&max_item_size=2MB&fail_open=true",
        name="c",
    )
    assert isinstance(cache, MemcachedCache)
    assert list(cache._nodes) == ["127.0.0.1:1", "127.0.0.1:2", "localhost:11211"]
    assert (cache.default_ttl, cache.key_policy, cache.large_values) == (60.0, "reject", "chunk")
    assert cache.max_item_size == 2 * 1024 * 1024
    assert cache.fail_open is True
    cache.close()  # never connected: construction does not touch the network


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("memcached://h:1?nope=1", "nope"),
        ("memcached://h:1?key_policy=truncate", "key_policy"),
        ("memcached://h:1?large_values=drop", "large_values"),
        ("memcached://h:1?max_item_size=-1", "max_item_size"),
        ("memcached://h:1?prefix=has%20space", "prefix"),
        ("memcached://h:1?retry_attempts=x", "retry_attempts"),
        ("memcached://h:1?serializer=yaml", "serializer"),
        ("memcached://h:1?dead_retry=1&breaker_recovery=2", "dead_retry"),
        ("memcached://h:1?max_item_size=100", "max_item_size"),
        ("memcached://", "url"),
        ("memcached://user:pw@h:1", "url"),
        ("memcached://h:1/0", "url"),
    ],
)
def test_bad_configuration_names_the_key(url: str, key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        create_cache(url)
    assert info.value.key == key


# -- keys -------------------------------------------------------------------------------------

ODD_KEYS = ["with space", "tab\there", "new\nline", "ctl\x01", "del\x7f", "x" * 300, "é" * 200]


@pytest.mark.parametrize("key", ODD_KEYS, ids=repr)
def test_keys_memcached_refuses_are_hashed(make: Any, key: str) -> None:
    cache = make(prefix="policy:")
    cache.set(key, "v")
    assert cache.get(key) == "v"
    stored = cache._key(key)
    assert len(stored) <= MAX_KEY_LENGTH
    assert b"#" in stored
    assert cache.delete(key)


@pytest.mark.parametrize("key", ODD_KEYS, ids=repr)
def test_keys_memcached_refuses_are_rejected_by_option(make: Any, key: str) -> None:
    cache = make(prefix="policy:", key_policy="reject")
    with pytest.raises(InvalidKey):
        cache.set(key, "v")
    with pytest.raises(InvalidKey):
        cache.get(key)


def test_longest_plain_key_is_stored_as_is(make: Any) -> None:
    cache = make(prefix="p:", key_policy="reject")
    namespace = cache._key("k")[:-1]
    key = "k" * (MAX_KEY_LENGTH - len(namespace))
    cache.set(key, 1)
    assert cache._key(key) == namespace + key.encode()
    assert cache.get(key) == 1
    with pytest.raises(InvalidKey):
        cache.set(key + "k", 1)


def test_a_forged_hashed_key_is_another_key(make: Any) -> None:
    cache = make(prefix="forge:")
    long_key = "x" * 300
    cache.set(long_key, "real")
    digest = cache._key(long_key).rpartition(b"#")[2].decode()
    cache.set("#" + digest, "forged")
    cache.set(digest, "forged")
    assert cache.get(long_key) == "real"


# -- large values ------------------------------------------------------------------------------


@pytest.fixture
def small_items(memcached_binary: str) -> Iterator[MemcachedServer]:
    """A memcached whose item size limit is 64 KiB (``-I 64k``)."""
    with MemcachedServer(
        {"-I": "64k", "-o": "slab_chunk_max=32768"}, binary=memcached_binary
    ) as server:
        yield server


def test_value_too_large_is_refused(small_items: MemcachedServer) -> None:
    with MemcachedCache(
        [(small_items.host, small_items.port)], max_item_size=64 * 1024, compression="none"
    ) as cache:
        fits = b"x" * (60 * 1024)
        cache.set("fits", fits)
        assert cache.get("fits") == fits
        with pytest.raises(ValueTooLarge):
            cache.set("big", b"x" * (64 * 1024))
        with pytest.raises(ValueTooLarge):
            cache.add("big", b"x" * (64 * 1024))
        assert cache.set_many({"big": b"x" * 70_000, "ok": 1}) == ["big"]
        assert cache.get_many(["big", "ok"]) == {"ok": 1}


def test_item_limit_above_the_servers_is_reported_as_too_large(
    small_items: MemcachedServer,
) -> None:
    # max_item_size says 1 MiB but the server was started with -I 64k: its refusal is typed.
    with MemcachedCache([(small_items.host, small_items.port)], compression="none") as cache:
        with pytest.raises(ValueTooLarge, match="too large"):
            cache.set("big", b"x" * 200_000)
        cache.set("after", 1)  # the connection is still usable
        assert cache.get("after") == 1


def test_chunked_values_round_trip(small_items: MemcachedServer) -> None:
    with MemcachedCache(
        [(small_items.host, small_items.port)],
        max_item_size=64 * 1024,
        large_values="chunk",
        compression="none",
    ) as cache:
        big = bytes(range(256)) * 2000  # 512 000 bytes, 9 chunks
        cache.set("big", big, ttl=60)
        assert cache.get("big") == big
        assert cache.get_many(["big", "none"]) == {"big": big}
        assert cache.set_many({"m": big, "s": 1}) == []
        assert cache.get_many(["m", "s"]) == {"m": big, "s": 1}
        assert cache.add("big", b"other") is False
        assert cache.touch("big", ttl=None)
        assert cache.get("big") == big
        assert cache.ttl("big") is None


def test_a_lost_or_altered_chunk_is_a_miss(small_items: MemcachedServer) -> None:
    with MemcachedCache(
        [(small_items.host, small_items.port)],
        max_item_size=64 * 1024,
        large_values="chunk",
        compression="none",
    ) as cache:
        big = b"y" * 300_000
        cache.set("big", big)
        base = manifest_base(small_items, cache, "big")
        assert raw(small_items, b"delete " + base + b"1\r\n") == b"DELETED\r\n"
        assert cache.get("big", MISSING) is MISSING

        cache.set("big", big)
        base = manifest_base(small_items, cache, "big")
        chunk = b"z" * 10
        reply = raw(small_items, b"set %s0 0 0 %d\r\n%s\r\n" % (base, len(chunk), chunk))
        assert reply == b"STORED\r\n"
        assert cache.get("big", MISSING) is MISSING


# -- TTLs ---------------------------------------------------------------------------------------


def test_ttl_over_thirty_days_is_sent_as_a_unix_time(
    make: Any, memcached_server: MemcachedServer
) -> None:
    # Sent as a relative 40 days, memcached would read it as a date in 1970: gone at once.
    cache = make(prefix="ttl40:")
    forty_days = 40 * 86400
    cache.set("k", 1, ttl=forty_days)
    assert cache.get("k") == 1
    remaining = cache.ttl("k")
    assert remaining is not None
    # memcached converts an absolute time against its own clock, which ticks once a second
    # and is rounded at start-up: up to ~3 s either way, plus ttl()'s half-second middle.
    assert forty_days - 5 <= remaining <= forty_days + 4
    cache.set_many({"m": 2}, ttl=forty_days)
    assert cache.get("m") == 2
    assert cache.add("a", 3, ttl=forty_days)
    assert cache.get("a") == 3
    assert cache.touch("m", ttl=forty_days)
    assert cache.get("m") == 2
    assert cache.incr("m", -5) == -3  # the compare-and-swap path keeps a long TTL too
    remaining = cache.ttl("m")
    assert remaining is not None
    assert remaining > 30 * 86400


def test_sub_second_ttl_rounds_up(make: Any) -> None:
    cache = make(prefix="subsec:")
    cache.set("k", 1, ttl=0.01)  # memcached's 0 would mean "never": 1 s it is
    assert cache.get("k") == 1
    remaining = cache.ttl("k")
    assert remaining is not None
    assert 0 < remaining <= 1


# -- counters --------------------------------------------------------------------------------------


def test_counters_go_negative_and_back(make: Any) -> None:
    cache = make(prefix="ctr:")
    assert cache.decr("c", 3) == -3
    assert cache.incr("c", 1) == -2  # memcached cannot incr "-3": the CAS path does
    assert cache.incr("c", 5) == 3
    assert cache.decr("c", 3) == 0
    assert cache.decr("c", 1) == -1
    cache.set("big", 2**70)
    assert cache.incr("big") == 2**70 + 1


def test_a_non_integer_raises_pymemcaches_error_too(make: Any) -> None:
    # Django's PyMemcacheCache lets pymemcache's MemcacheClientError through for a value
    # memcached cannot increment; handlers of either class keep working.
    from pymemcache.exceptions import MemcacheClientError

    cache = make(prefix="nan:")
    cache.set("s", "text")
    cache.set("n", 1)
    for call in (
        lambda: cache.incr("s"),
        lambda: cache.decr("s"),
        lambda: cache.incr("n", 1.5),  # type: ignore[arg-type]
        lambda: cache.decr("n", 1.5),  # type: ignore[arg-type]
        lambda: asyncio.run(cache.adecr("n", 1.5)),  # type: ignore[arg-type]
    ):
        with pytest.raises(NotAnInteger) as caught:
            call()
        assert isinstance(caught.value, MemcacheClientError)
    assert cache.get("s") == "text"
    assert cache.get("n") == 1


# -- namespaces ------------------------------------------------------------------------------------


def test_clear_leaves_other_caches_alone(make: Any) -> None:
    a, b = make(prefix="a:"), make(prefix="b:")
    a.set("k", "a")
    b.set("k", "b")
    a.clear()
    assert a.get("k") is None
    assert b.get("k") == "b"


def test_clear_is_seen_by_another_client_within_the_refresh(make: Any) -> None:
    first = make(prefix="shared:", namespace_refresh=0)
    second = make(prefix="shared:", namespace_refresh=0)
    first.set("k", 1)
    assert second.get("k") == 1
    second.clear()
    assert first.get("k") is None


def test_an_evicted_namespace_key_never_revives_old_keys(
    make: Any, memcached_server: MemcachedServer
) -> None:
    cache = make(prefix="evict:", namespace_refresh=0)
    cache.set("k", "before")
    cache.clear()
    assert raw(memcached_server, b"delete evict:!ns\r\n") == b"DELETED\r\n"
    fresh = make(prefix="evict:", namespace_refresh=0)
    assert fresh.get("k") is None
    assert cache.get("k") is None


def test_flush_on_clear(fresh_memcached_server: MemcachedServer) -> None:
    url = fresh_memcached_server.url
    with create_cache(url, prefix="x:") as other, create_cache(url, flush_on_clear=True) as cache:
        other.set("k", 1)
        cache.set("k", 2)
        cache.clear()
        assert other.get("k") is None  # flush_all empties the whole server
        assert cache.get("k") is None


# -- placement ----------------------------------------------------------------------------------


def test_keys_are_spread_over_the_pool(memcached_cluster: list[MemcachedServer]) -> None:
    servers = [(s.host, s.port) for s in memcached_cluster]
    with MemcachedCache(servers, prefix="spread:") as cache:
        cache.set_many({f"k{i}": i for i in range(300)})
        counts = []
        for server in memcached_cluster:
            stats = raw(server, b"stats\r\n", until=b"END\r\n")
            line = next(ln for ln in stats.split(b"\r\n") if ln.startswith(b"STAT curr_items "))
            counts.append(int(line.split()[2]))
        assert sum(counts) >= 300
        assert all(count > 50 for count in counts), counts
        assert cache.get_many([f"k{i}" for i in range(300)]) == {f"k{i}": i for i in range(300)}
        assert cache.delete_many([f"k{i}" for i in range(300)] + ["absent"]) == 300
        assert cache.get_stats().extra["nodes_up"] == 3


def test_stats_are_server_wide_and_include_breakers(make: Any) -> None:
    cache = make(prefix="stats:")
    cache.set("k", 1)
    stats = cache.get_stats()
    assert stats.items >= 1
    assert stats.memory_bytes > 0
    assert stats.memory_limit
    (node,) = stats.extra["nodes"].values()
    assert node["up"] is True
    assert node["breaker_state"] == 0
    assert stats.extra["fail_open_errors_total"] == 0


def test_stats_are_exact_under_threads(make: Any) -> None:
    """Per-thread counters lose no update, and a finished thread's counts are kept."""
    import threading

    cache = make(name="threads")
    cache.set("present", b"x")
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        for _ in range(500):
            cache.get("present")
            cache.get("absent")
        cache.get_many(["present", "absent"])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = cache.get_stats()
    assert (stats.hits, stats.misses, stats.sets) == (4 * 501, 4 * 501, 1)


def test_one_connection_per_thread_closed_with_the_thread(make: Any) -> None:
    import threading

    cache = make(name="conns")
    (node,) = cache._nodes.values()
    cache.set("k", b"v")
    main_client = node.client()
    seen: list[Any] = []

    def work() -> None:
        assert cache.get("k") == b"v"
        seen.append(node.client())

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen[0] is not main_client
    assert seen[0].sock is None  # closed when its thread ended
    assert len(node._slots) == 1
    assert main_client.sock is not None
    cache.close()
    assert main_client.sock is None


def test_raw_bytes_read_fast_path(make: Any) -> None:
    cache = make(compression="none")
    cache.set("b", b"\xc1\x01\x01\x00body")
    cache.set("o", {"a": 1})
    assert cache.get("b") == b"\xc1\x01\x01\x00body"
    assert cache.get_many(["b", "o"]) == {"b": b"\xc1\x01\x01\x00body", "o": {"a": 1}}


# -- the hand-spoken get/set (memcached_wire) ----------------------------------------------------


def _wire_client(server: MemcachedServer) -> Any:
    from pymemcache.client.base import Client

    from cachekit.providers.memcached import _driver

    _driver()  # as the provider does before its first client: binds the driver's error types

    return Client((server.host, server.port), no_delay=True, default_noreply=False)


def test_wire_round_trips_awkward_and_large_values(memcached_server: MemcachedServer) -> None:
    from cachekit.providers.memcached import _check_line
    from cachekit.providers.memcached_wire import get_one, set_one

    client = _wire_client(memcached_server)
    flagged: list[int] = []

    def deserialize(key: bytes, value: bytes, flags: int) -> bytes:
        flagged.append(flags)
        return value

    values = [b"", b"\r\nEND\r\n", b"VALUE x 0 1\r\n", b"x" * 70_000, bytes(range(256)) * 3000]
    for i, value in enumerate(values):
        set_one(client, b"wire:%d" % i, (value[:3], value[3:]), 0, 0, check_line=_check_line)
        assert get_one(client, b"wire:%d" % i, _check_line, deserialize) == value
        assert client.get(b"wire:%d" % i) == value  # what pymemcache reads back
    set_one(client, b"wire:f", (b"", b"v"), 0, 4, check_line=_check_line)
    assert get_one(client, b"wire:f", _check_line, deserialize) == b"v"
    assert flagged == [4]
    assert get_one(client, b"wire:absent", _check_line, deserialize) is None
    client.close()


def test_wire_errors_close_the_connection(memcached_server: MemcachedServer) -> None:
    from pymemcache.exceptions import MemcacheServerError

    from cachekit.providers.memcached import _check_line
    from cachekit.providers.memcached_wire import set_one

    client = _wire_client(memcached_server)
    with pytest.raises(MemcacheServerError):  # over the server's 1 MiB item limit
        set_one(client, b"wire:big", (b"", b"x" * (2 << 20)), 0, 0, check_line=_check_line)
    assert client.sock is None  # closed: no half-read reply can leak into the next command
    set_one(client, b"wire:after", (b"ok", b""), 0, 0, check_line=_check_line)  # reconnects
    assert client.get(b"wire:after") == b"ok"
    client.close()


def test_wire_many_round_trips_awkward_and_large_values(memcached_server: MemcachedServer) -> None:
    from cachekit.providers import memcached_wire as wire
    from cachekit.providers.memcached import _check_line

    client = _wire_client(memcached_server)
    values = {
        b"wm:empty": b"",
        b"wm:end": b"\r\nEND\r\n",
        b"wm:value": b"VALUE wm:x 0 3\r\nabc\r\n",
        b"wm:big": b"y" * 200_000,  # many recvs
        **{b"wm:%d" % i: b"v%d" % i * 50 for i in range(300)},
    }
    parts = {key: (value[:2], value[2:]) for key, value in values.items()}  # head, body
    assert wire.set_many(client, parts, 0, 0, check_line=_check_line) == []
    got = wire.get_many(client, [*values, b"wm:absent"], _check_line, lambda k, v, f: v)
    assert got == ({}, values)
    assert client.get_many(list(values)) == values  # what pymemcache reads back
    assert wire.get_many(client, [b"wm:absent"], _check_line, lambda k, v, f: v) == ({}, {})
    # With a header: the values that begin with it come back without it, the others whole.
    header = b"wm:x"
    with_header = {b"wm:h:%d" % i: header + b"%d" % i * 3000 for i in range(40)}
    with_header[b"wm:h:only"] = header
    parts = {key: (value[:5], value[5:]) for key, value in with_header.items()}
    assert wire.set_many(client, parts, 0, 0, check_line=_check_line) == []
    keys = [*with_header, b"wm:value", b"wm:empty", b"wm:absent"]
    bodies, others = wire.get_many(client, keys, _check_line, lambda k, v, f: v, header=header)
    assert bodies == {key: value[len(header) :] for key, value in with_header.items()}
    assert others == {b"wm:value": values[b"wm:value"], b"wm:empty": b""}
    client.close()


def test_wire_set_many_gathers_large_values_across_partial_writes(
    memcached_server: MemcachedServer,
) -> None:
    from cachekit.providers import memcached_wire as wire
    from cachekit.providers.memcached import _check_line

    client = _wire_client(memcached_server)
    client._connect()
    client.sock.settimeout(5.0)  # as the provider's clients: sendmsg may then write partially
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)  # force partial writes
    values = {b"wl:%d" % i: bytes([i]) * 100_000 for i in range(40)}  # 4 MB: several sendmsg
    parts = {key: (b"h" + value[:3], value[3:]) for key, value in values.items()}
    values = {key: head + body for key, (head, body) in parts.items()}
    assert wire.set_many(client, parts, 0, 0, check_line=_check_line) == []
    assert wire.get_many(client, list(values), _check_line, lambda k, v, f: v) == ({}, values)
    client.close()


@contextlib.contextmanager
def dribbling_proxy(server: MemcachedServer) -> Iterator[int]:
    """A loopback proxy to ``server`` (its port is yielded) that passes the server's bytes on
    two at a time, so that every reply arrives in many pieces."""
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    opened: list[socket.socket] = [listener]
    workers: list[threading.Thread] = []

    def pipe(src: socket.socket, dst: socket.socket, piece: int) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                for i in range(0, len(data), piece):
                    dst.sendall(data[i : i + piece])
                    if piece < 65536:
                        time.sleep(0.002)

    def accept() -> None:
        with contextlib.suppress(OSError):  # the listener closed before a client came
            while True:
                client_side, _ = listener.accept()
                upstream = socket.create_connection((server.host, server.port))
                opened.extend((client_side, upstream))
                for args in ((client_side, upstream, 65536), (upstream, client_side, 2)):
                    worker = threading.Thread(target=pipe, args=args, daemon=True)
                    workers.append(worker)
                    worker.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        for sock in opened:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        acceptor.join(timeout=5)
        for worker in workers:
            worker.join(timeout=5)


def test_wire_get_of_a_miss_whose_reply_arrives_in_pieces(
    memcached_server: MemcachedServer,
) -> None:
    """Review finding: ``END`` split across recvs was taken for a protocol error."""
    from pymemcache.client.base import Client

    from cachekit.providers.memcached import _check_line, _driver
    from cachekit.providers.memcached_wire import get_one

    _driver()
    with dribbling_proxy(memcached_server) as port:
        client = Client(("127.0.0.1", port), no_delay=True, default_noreply=False, timeout=5)
        try:
            assert get_one(client, b"frag:absent", _check_line, lambda k, v, f: v) is None
            client.set(b"frag:k", b"value")
            assert get_one(client, b"frag:k", _check_line, lambda k, v, f: v) == b"value"
        finally:
            client.close()


def test_set_many_replies_arriving_in_pieces(memcached_server: MemcachedServer) -> None:
    """The all-STORED shortcut of ``set_many`` must wait for every reply, however split."""
    with (
        dribbling_proxy(memcached_server) as port,
        MemcachedCache([("127.0.0.1", port)], timeout=5, compression="none") as cache,
    ):
        small = {f"s{i}": i for i in range(20)}
        assert cache.set_many(small) == []
        large = {f"l{i}": bytes([i]) * 5000 for i in range(5)}  # the gathered send
        assert cache.set_many(large) == []
        assert cache.get_many([*small, *large]) == {**small, **large}
        assert cache.get_stats().sets == 25


# -- items the server refuses as too large, in a batch ------------------------------------------


def test_set_many_returns_the_keys_the_server_refuses_as_too_large(
    small_items: MemcachedServer,
) -> None:
    """Review finding: ``ValueTooLarge`` escaped ``set_many`` when the server's ``-I`` was
    below ``max_item_size``, instead of the key coming back among the failed ones."""
    with MemcachedCache([(small_items.host, small_items.port)], compression="none") as cache:
        cache.set("big2", b"old")
        (node,) = cache._nodes.values()
        sock = node.client().sock
        failed = cache.set_many(
            {"a": 1, "big": b"x" * 200_000, "b": 2, "big2": b"y" * 100_000, "c": 3}
        )
        assert failed == ["big", "big2"]
        # memcached drops the old value of a key whose new one it refused: never a stale read.
        assert cache.get_many(["a", "big", "b", "big2", "c"]) == {"a": 1, "b": 2, "c": 3}
        assert node.client().sock is sock  # the replies after the refusals were read in step
        assert cache.get_stats().sets == 4  # big2's first set, then a, b and c
        assert asyncio.run(cache.aset_many({"big": b"x" * 70_000, "d": 4})) == ["big"]
        assert cache.get("d") == 4
        with pytest.raises(ValueTooLarge):  # a single set still says why
            cache.set("big", b"x" * 70_000)


def test_set_many_drops_the_old_value_of_a_key_it_refuses_itself(
    memcached_server: MemcachedServer,
) -> None:
    """Review finding: a value over ``max_item_size`` refused before sending came back among
    the failed keys but left the key's old value readable, unlike a refusal by the server."""
    with MemcachedCache(
        [(memcached_server.host, memcached_server.port)],
        compression="none",
        large_values="reject",
        max_item_size=10_000,
    ) as cache:
        cache.set_many({"k": b"old", "other": b"kept"})
        assert cache.set_many({"k": b"x" * 20_000, "n": 1}) == ["k"]
        assert cache.get_many(["k", "other", "n"]) == {"other": b"kept", "n": 1}


def test_set_many_too_large_is_no_failure_when_failing_open(small_items: MemcachedServer) -> None:
    with MemcachedCache(
        [(small_items.host, small_items.port)], compression="none", fail_open=True
    ) as cache:
        assert cache.set_many({"big": b"x" * 200_000, "ok": 1}) == ["big"]
        assert cache.get("ok") == 1
        assert cache.get_stats().extra["fail_open_errors_total"] == 0


def test_wire_set_many_refusals_keep_the_connection(small_items: MemcachedServer) -> None:
    from cachekit.providers import memcached_wire as wire
    from cachekit.providers.memcached import _check_line

    client = _wire_client(small_items)
    values = {b"wt:a": (b"", b"a"), b"wt:big": (b"", b"x" * 100_000), b"wt:b": (b"b", b"b" * 4999)}
    assert wire.set_many(client, values, 0, 0, check_line=_check_line) == [b"wt:big"]
    assert client.sock is not None
    assert client.get_many([b"wt:a", b"wt:big", b"wt:b"]) == {b"wt:a": b"a", b"wt:b": b"b" * 5000}
    client.close()


# -- timeouts -----------------------------------------------------------------------------------


def test_kernel_timeouts_leave_other_socket_classes_alone(monkeypatch: Any) -> None:
    """Review finding: gevent's and eventlet's sockets (and TLS) stay non-blocking underneath
    and wait on the Python timeout; clearing it there would make every wait endless."""
    import ssl

    from cachekit.providers.memcached_wire import kernel_timeouts

    class GreenLike:
        """As gevent's socket: wraps a real one and is what ``socket.socket`` names once
        monkey-patched, without deriving from the C socket type."""

        def __init__(self) -> None:
            self._sock = socket.socket()

        def __getattr__(self, name: str) -> Any:
            return getattr(self._sock, name)

    green = GreenLike()
    monkeypatch.setattr(socket, "socket", GreenLike)
    green.settimeout(1.5)
    kernel_timeouts(green)  # type: ignore[arg-type]
    assert green.gettimeout() == 1.5
    green.close()
    monkeypatch.undo()

    context = ssl.create_default_context()
    raw = socket.socket()
    with context.wrap_socket(raw, server_hostname="x", do_handshake_on_connect=False) as tls:
        tls.settimeout(1.5)
        kernel_timeouts(tls)
        assert tls.gettimeout() == 1.5


@pytest.mark.skipif(sys.platform != "linux", reason="kernel timeouts are used on Linux only")
def test_sockets_wait_with_kernel_timeouts(make: Any) -> None:
    import struct

    cache = make(timeout=0.25)
    cache.set("k", 1)
    (node,) = cache._nodes.values()
    sock = node.client().sock
    assert sock.gettimeout() is None  # blocking: no poll() before every send and recv
    for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
        raw_timeval = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("@ll"))
        seconds, micros = struct.unpack("@ll", raw_timeval)
        assert seconds == 0
        assert 250_000 <= micros <= 260_000  # the kernel rounds up to its clock ticks
