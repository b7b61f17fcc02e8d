"""Regressions from a review of the memcached provider, against real ``memcached`` processes:
chunked values that lost a chunk, chunks on a dead server, a command interrupted by a
BaseException, TTLs past 2038, ``flush_on_clear`` with a dead server, and a foreign value under
the namespace key."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from test_memcached import raw

from cachekit.errors import BackendUnavailable, NotAnInteger
from cachekit.providers.memcached import MemcachedCache
from cachekit.testing.servers import MemcachedServer


def address(server: MemcachedServer) -> str:
    return f"{server.host}:{server.port}"


def set_with_a_chunk_on(cache: MemcachedCache, key: str, node: object) -> bytes:
    """Store a 400 KB value (7 chunks, each placed at random) under ``key`` until one of its
    chunks lands on ``node``; the value."""
    value = os.urandom(400_000)
    for _ in range(100):
        cache.set(key, value)
        if any(cache._route(chunk) is node for chunk in chunk_keys(cache, key)):
            return value
    pytest.fail("no chunk ever landed on the second server")


def chunk_keys(cache: MemcachedCache, key: str) -> list[bytes]:
    """The chunk keys named by the manifest of ``key`` (read with cachekit's own client)."""
    stored = cache._key(key)
    manifest = bytes(cache._call(cache._route(stored), lambda c: c.get(stored)))
    _, count, _, _, base = manifest.split(b" ")
    return [base + b"%d" % i for i in range(int(count))]


# -- 1: a chunk lost to eviction -------------------------------------------------------------


@pytest.fixture
def tiny_memcached(memcached_binary: str) -> Iterator[MemcachedServer]:
    """A memcached with 16 MB of memory, so that writing more evicts."""
    with MemcachedServer({"-m": 16}, binary=memcached_binary) as server:
        yield server


def test_a_chunked_value_that_lost_a_chunk_is_a_miss_everywhere(
    tiny_memcached: MemcachedServer,
) -> None:
    """An evicted chunk made ``get`` miss while the manifest stayed: ``add`` refused the key,
    ``exists`` said present, and ``get_or_set`` ran its factory on every call, storing nothing.
    The first read that finds the value broken now removes its manifest."""
    server = tiny_memcached
    with MemcachedCache(
        [(server.host, server.port)], prefix="t18:", large_values="chunk", compression="none"
    ) as cache:
        big = os.urandom(3_000_000)
        cache.set("report", big)
        assert cache.get("report") == big
        for i in range(60):  # ~54 MB through 16 MB: the oldest chunks are evicted
            cache.set(f"other{i}", os.urandom(900_000))
        assert cache.get("report") is None
        assert cache.exists("report") is False
        assert cache.ttl("report") == 0.0
        calls: list[int] = []

        def factory() -> bytes:
            calls.append(1)
            return b"fresh"

        assert cache.get_or_set("report", factory) == b"fresh"
        assert cache.get_or_set("report", factory) == b"fresh"
        assert len(calls) == 1
        assert cache.delete("report")
        assert cache.add("report", b"new") is True
        assert cache.get("report") == b"new"


def test_a_broken_chunked_value_is_dropped_by_get_many_and_only_if_unchanged(
    memcached_server: MemcachedServer,
) -> None:
    """``get_many`` drops the manifest of a broken value too; a value rewritten meanwhile (a
    different manifest) is left alone."""
    server = memcached_server
    with MemcachedCache(
        [(server.host, server.port)],
        prefix="t18m:",
        max_item_size=64 * 1024,
        large_values="chunk",
        compression="none",
    ) as cache:
        big = os.urandom(300_000)
        cache.set("a", big)
        cache.set("b", 1)
        assert raw(server, b"delete " + chunk_keys(cache, "a")[2] + b"\r\n") == b"DELETED\r\n"
        assert cache.get_many(["a", "b"]) == {"b": 1}
        assert cache.exists("a") is False
        assert cache.add("a", 2) is True
        cache.set("i", big)
        assert raw(server, b"delete " + chunk_keys(cache, "i")[0] + b"\r\n") == b"DELETED\r\n"
        assert cache.inspect("i") is None
        assert cache.exists("i") is False

        cache.set("c", big)
        info = cache.inspect("c")
        assert info is not None
        assert info.serializer == "chunked"
        assert info.size is not None
        assert info.size >= 300_000  # the serialized whole
        stored = cache._key("c")
        node = cache._route(stored)
        old = bytes(cache._call(node, lambda c: c.get(stored)))
        assert raw(server, b"delete " + chunk_keys(cache, "c")[0] + b"\r\n") == b"DELETED\r\n"
        cache.set("c", big)  # a new value, under a new manifest
        cache._drop_manifest(node, stored, old)  # what a read of the old manifest would do
        assert cache.get("c") == big


# -- 2: a chunk on a dead server, failing open -----------------------------------------------


def test_fail_open_reads_of_a_chunk_on_a_dead_server_miss_and_spare_other_keys(
    memcached_cluster: list[MemcachedServer],
) -> None:
    """With fail_open, ``get`` of a chunked value whose chunk lived on a dead server raised,
    and ``get_many`` lost every other key of the manifest's (healthy) server with it."""
    first, second = memcached_cluster[:2]
    servers = [(first.host, first.port), (second.host, second.port)]
    options = {
        "prefix": "t2:",
        "max_item_size": 64 * 1024,
        "large_values": "chunk",
        "compression": "none",
        "breaker_failures": 100,  # keep routing to the dead server: a failure, not a miss
        "namespace_refresh": 3600,  # the version key may live on the server about to die
    }
    with (
        MemcachedCache(servers, fail_open=True, **options) as cache,  # type: ignore[arg-type]
        MemcachedCache(servers, **options) as closed,  # type: ignore[arg-type]
    ):
        a, b = cache._nodes[address(first)], cache._nodes[address(second)]
        names = (f"k{i}" for i in range(10_000))
        on_a = [name for name in names if cache._route(cache._key(name)) is a]
        big_key, plain = on_a[0], on_a[1:6]
        big = set_with_a_chunk_on(cache, big_key, b)
        cache.set_many({name: name for name in plain})
        assert cache.get_many([big_key, *plain]) == {big_key: big, **{n: n for n in plain}}
        assert closed.get(big_key) == big
        second.kill()

        assert cache.get_many([big_key, *plain]) == {name: name for name in plain}
        assert cache.get(big_key, "MISS") == "MISS"
        extra = cache.get_stats().extra
        assert extra["fail_open_get_errors_total"] >= 1
        assert extra["fail_open_get_many_errors_total"] >= 1
        with pytest.raises(BackendUnavailable):
            closed.get(big_key)
        with pytest.raises(BackendUnavailable):  # inspect fails closed, fail_open or not
            cache.inspect(big_key)
        # A failure, not a loss: the manifest stays for when the server is back.
        assert cache.exists(big_key) is True


def test_chunks_on_a_server_whose_breaker_is_open_are_an_outage_not_a_loss(
    memcached_cluster: list[MemcachedServer],
) -> None:
    """Once the chunk server's breaker opened, its chunks were looked for on the next server,
    found "missing", and the manifest deleted: a value lost to a stall, the misses uncounted."""
    first, second = memcached_cluster[:2]
    servers = [(first.host, first.port), (second.host, second.port)]
    with MemcachedCache(
        servers,  # type: ignore[arg-type]
        prefix="t2b:",
        max_item_size=64 * 1024,
        large_values="chunk",
        compression="none",
        fail_open=True,
        breaker_failures=1,
        breaker_recovery=3600,
        timeout=0.3,
        namespace_refresh=3600,
    ) as cache:
        a, b = cache._nodes[address(first)], cache._nodes[address(second)]
        cache.get("warm")  # the namespace version is read before the stall
        names = (f"k{i}" for i in range(10_000))
        big_key = next(name for name in names if cache._route(cache._key(name)) is a)
        big = set_with_a_chunk_on(cache, big_key, b)
        with second.stalled():
            for _ in range(3):  # the first times out and opens b's breaker; then it is open
                assert cache.get(big_key, "MISS") == "MISS"
            assert cache.get_stats().extra["fail_open_get_errors_total"] == 3
            assert cache.exists(big_key) is True  # the manifest is kept
        b.breaker.success()  # as a successful probe after breaker_recovery would
        assert cache.get(big_key) == big


# -- 3: a BaseException mid-command ----------------------------------------------------------


class Interrupted(BaseException):
    """What a signal handler (or gevent.Timeout) raises into the running code."""


def _server_rx_queue(server_port: int, client_port: int) -> int:
    """Bytes waiting unread in the server's socket of that connection (``/proc/net/tcp``)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, queues = fields[1], fields[2], fields[4]
            if (
                int(local.rsplit(":", 1)[1], 16) == server_port
                and int(remote.rsplit(":", 1)[1], 16) == client_port
            ):
                return int(queues.split(":")[1], 16)
    return 0


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/net/tcp")
def test_a_base_exception_mid_command_closes_the_connection(
    fresh_memcached_server: MemcachedServer,
) -> None:
    """A KeyboardInterrupt-like exception while pymemcache waited for a reply left the socket
    open with the reply still to come: the next command read it as its own."""
    server = fresh_memcached_server
    with MemcachedCache([(server.host, server.port)], timeout=30, prefix="t3:") as cache:
        cache.set("a", 1)
        cache.set("b", 2)
        node = cache._nodes[address(server)]
        client_port = node.client().sock.getsockname()[1]
        main = threading.main_thread().ident
        assert main is not None
        assert threading.get_ident() == main
        sent = threading.Event()

        def interrupt_once_sent() -> None:
            # The signal goes only once "delete" sits unread at the stopped server, so the
            # exception lands while the client waits for its reply.
            deadline = time.monotonic() + 20
            while _server_rx_queue(server.port, client_port) == 0:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.005)
            sent.set()
            signal.pthread_kill(main, signal.SIGALRM)

        def handler(signum: int, frame: FrameType | None) -> None:
            raise Interrupted

        previous = signal.signal(signal.SIGALRM, handler)
        try:
            with server.stalled():
                helper = threading.Thread(target=interrupt_once_sent)
                helper.start()
                try:
                    with pytest.raises(Interrupted):
                        cache.delete("a")
                finally:
                    helper.join()
        finally:
            signal.signal(signal.SIGALRM, previous)
        assert sent.is_set()
        # The server has since run the interrupted delete; its reply must not be read now.
        assert cache.delete("nope") is False
        assert cache.exists("b") is True
        assert cache.get("b") == 2
        assert cache.get("a") is None


def test_a_base_exception_releases_a_half_open_probe(
    fresh_memcached_server: MemcachedServer,
) -> None:
    """The probe a half-open breaker granted to an interrupted call is given back, so the next
    call may probe (it stayed taken until the probe timed out)."""
    server = fresh_memcached_server
    with MemcachedCache([(server.host, server.port)], breaker_failures=1, prefix="t3p:") as cache:
        cache.set("k", 1)
        breaker = cache._nodes[address(server)].breaker
        breaker.recovery_timeout = 0  # open, then half-open at once
        breaker.failure()
        assert breaker.allow()  # the probe
        breaker.recovery_timeout = 3600  # a probe never given back now stays taken

        def interrupted(client: object) -> None:
            raise Interrupted

        with pytest.raises(Interrupted):
            cache._call(cache._nodes[address(server)], interrupted)
        assert breaker.allow()


# -- 4: TTLs past 2038 -----------------------------------------------------------------------


def test_ttls_reaching_past_2038_are_clamped_not_dead_on_arrival(
    memcached_server: MemcachedServer,
) -> None:
    """memcached reads exptime as a signed 32-bit number: an absolute time past 2038-01-19
    wrapped negative, and the item "stored" expired at once."""
    server = memcached_server
    twenty_years = 20 * 365 * 86400
    with MemcachedCache([(server.host, server.port)], prefix="t4:") as cache:
        cache.set("k", 1, ttl=twenty_years)
        assert cache.get("k") == 1
        remaining = cache.ttl("k")
        assert remaining is not None
        assert remaining > 10 * 365 * 86400
        assert cache.set_many({"m": 2}, ttl=twenty_years) == []
        assert cache.get("m") == 2
        assert cache.add("a", 3, ttl=twenty_years) is True
        assert cache.get("a") == 3
        cache.set("t", 4)
        assert cache.touch("t", ttl=twenty_years) is True
        assert cache.get("t") == 4
        cache.set("huge", 5, ttl=10**30)  # was refused by the server
        assert cache.get("huge") == 5
        assert cache._exptime(10**30) == 2**31 - 1


# -- 5: flush_on_clear with a dead server ----------------------------------------------------


def test_flush_on_clear_flushes_the_live_servers_past_a_dead_one(
    memcached_cluster: list[MemcachedServer],
) -> None:
    servers = [(s.host, s.port) for s in memcached_cluster]
    with MemcachedCache(
        servers,
        flush_on_clear=True,
        fail_open=True,
        breaker_failures=100,
        namespace_refresh=3600,  # the version key may live on the dead server
        prefix="t5:",
    ) as cache:
        keys = [f"k{i}" for i in range(100)]
        cache.set_many(dict.fromkeys(keys, 1))
        dead = memcached_cluster[0]  # the first flushed
        live = [k for k in keys if cache._route(cache._key(k)).address != address(dead)]
        assert live
        dead.kill()
        cache.clear()
        assert cache.get_many(live) == {}
        assert cache.get_stats().extra["fail_open_clear_errors_total"] >= 1


def test_flush_on_clear_fails_closed_after_flushing_the_rest_and_skips_an_open_breaker(
    memcached_cluster: list[MemcachedServer],
) -> None:
    servers = [(s.host, s.port) for s in memcached_cluster]
    with MemcachedCache(
        servers, flush_on_clear=True, breaker_failures=100, namespace_refresh=3600, prefix="t5c:"
    ) as c:
        keys = [f"k{i}" for i in range(100)]
        c.set_many(dict.fromkeys(keys, 1))
        dead = memcached_cluster[0]
        live = [k for k in keys if c._route(c._key(k)).address != address(dead)]
        dead.kill()
        with pytest.raises(BackendUnavailable):
            c.clear()
        assert c.get_many(live) == {}

        # An open breaker: that server is not tried (no connect), and the others are flushed.
        c.set_many(dict.fromkeys(live, 2))
        breaker = c._nodes[address(dead)].breaker
        breaker.failure_threshold = 1
        breaker.failure()
        rejected = breaker.rejected_count
        with pytest.raises(BackendUnavailable, match="circuit open"):
            c.clear()
        assert breaker.rejected_count == rejected + 1
        assert c.get_many(live) == {}


# -- 6: a foreign value under the namespace key ----------------------------------------------


def test_a_foreign_value_under_the_namespace_key_is_replaced(
    memcached_server: MemcachedServer,
) -> None:
    """A non-decimal ``{prefix}!ns`` (another client on a shared server) made every call raise
    SerializationError, fail_open or not, and clear() could not repair it."""
    server = memcached_server
    assert raw(server, b"set t6:!ns 0 0 5\r\nhello\r\n") == b"STORED\r\n"
    with MemcachedCache(
        [(server.host, server.port)], prefix="t6:", fail_open=True, namespace_refresh=0
    ) as cache:
        cache.set("k", 1)
        assert cache.get("k") == 1
        version = cache._ns_version
        assert raw(server, b"get t6:!ns\r\n", b"END\r\n").split(b"\r\n")[1] == b"%d" % version

        # Overwritten again: clear() (which increments the version) repairs it too.
        assert raw(server, b"set t6:!ns 0 0 3\r\nabc\r\n") == b"STORED\r\n"
        cache.clear()
        assert cache._ns_version > version
        assert cache.get("k") is None
        cache.set("k", 2)
        assert cache.get("k") == 2
        assert cache.get_stats().extra["fail_open_errors_total"] == 0


def test_incr_past_2_64_is_refused_and_leaves_the_counter(
    memcached_server: MemcachedServer,
) -> None:
    """memcached's incr wraps modulo 2**64 and reports success: 2**64 - 3 plus 5 became 2."""
    server = memcached_server
    with MemcachedCache([(server.host, server.port)], prefix="t7:") as cache:
        cache.set("c", 2**64 - 3)
        with pytest.raises(NotAnInteger, match="overflow"):
            cache.incr("c", 5)
        assert cache.get("c") == 2**64 - 3
        with pytest.raises(NotAnInteger, match="overflow"):
            cache.incr("c", 2**64 - 1)
        assert cache.get("c") == 2**64 - 3
        assert cache.incr("c", 2) == 2**64 - 1  # up to the largest counter
        assert cache.decr("c", 2**64 - 1) == 0  # decrements are not modular either


def test_items_leave_out_the_namespace_key_before_this_client_has_read_it(
    fresh_memcached_server: MemcachedServer,
) -> None:
    """A fresh process asking only for stats counted the ``!ns`` version key as an item."""
    with MemcachedCache([address(fresh_memcached_server)]) as writer:
        for i in range(5):
            writer.set(f"k{i}", i)
        assert writer.get_stats().items == 5
    with MemcachedCache([address(fresh_memcached_server)]) as fresh:
        assert fresh.get_stats().items == 5
