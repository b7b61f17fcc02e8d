"""Review fixes of the gRPC admin service: ConfigurePolicy, DeleteNamespace (real servers)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
import redis
from grpc_helpers import ThreadedServer

from cachekit.grpc.namespaces import Namespaces
from cachekit.testing.servers import RedisServer
from cachekit.v1 import admin_pb2 as apb
from cachekit.v1 import admin_pb2_grpc as apb_grpc
from cachekit.v1 import cache_pb2 as pb
from cachekit.v1 import cache_pb2_grpc as pb_grpc


def test_configure_policy_keeps_the_url_options_and_the_counters() -> None:
    namespaces = Namespaces()
    namespaces.create("default")
    namespaces.create("j", "memory://?serializer=json&default_ttl=60")
    with ThreadedServer(namespaces) as srv, grpc.insecure_channel(srv.target) as ch:
        cache, admin = pb_grpc.CacheServiceStub(ch), apb_grpc.CacheAdminServiceStub(ch)
        json_value = pb.Value(data=b'{"a": 1}', content_type="application/json")
        cache.Set(pb.SetRequest(namespace="j", key="k", value=json_value))
        cache.Get(pb.GetRequest(namespace="j", key="k"))
        cache.Get(pb.GetRequest(namespace="j", key="absent"))
        before = namespaces.get("j").cache
        made = admin.ConfigurePolicy(
            apb.ConfigurePolicyRequest(namespace="j", max_entries=50, eviction_policy="lfu")
        ).namespace
        after = namespaces.get("j").cache
        assert after is not before
        assert made.url == "memory://?serializer=json&default_ttl=60&policy=lfu&max_entries=50"
        assert made.policy.max_entries == 50
        assert after._dumps is not None  # type: ignore[attr-defined]  # still JSON
        assert after.default_ttl == 60  # type: ignore[attr-defined]
        got = cache.Get(pb.GetRequest(namespace="j", key="k"))
        assert got.found
        assert got.entry.value.content_type == "application/json"
        stats = admin.GetNamespaceStats(apb.GetNamespaceStatsRequest(namespace="j")).stats
        assert (stats.hits, stats.misses, stats.sets) == (2, 1, 1)
        listed = {
            n.name: n.url for n in admin.ListNamespaces(apb.ListNamespacesRequest()).namespaces
        }
        assert listed["j"] == made.url
        made = admin.ConfigurePolicy(
            apb.ConfigurePolicyRequest(namespace="j", max_entries=0)
        ).namespace
        assert made.url == "memory://?serializer=json&default_ttl=60&policy=lfu&max_entries=none"
        assert not made.policy.HasField("max_entries")


def test_delete_namespace_waits_for_its_running_calls(fresh_redis_server: RedisServer) -> None:
    """Closing the cache under a Set stalled on Redis leaked its connection, and the write
    landed after DeleteNamespace had returned."""
    server = fresh_redis_server
    pid = server.pid
    assert pid is not None
    checker = redis.Redis.from_url(server.url)
    namespaces = Namespaces()
    namespaces.create("default")
    namespaces.create("r", f"{server.url}?socket_timeout=30")

    async def scenario(target: str) -> None:
        async with grpc.aio.insecure_channel(target) as ch:
            cache, admin = pb_grpc.CacheServiceStub(ch), apb_grpc.CacheAdminServiceStub(ch)
            await cache.Set(pb.SetRequest(namespace="r", key="warm", value=pb.Value(data=b"x")))
            os.kill(pid, signal.SIGSTOP)
            try:
                late = pb.SetRequest(namespace="r", key="late", value=pb.Value(data=b"y"))
                setting = asyncio.ensure_future(cache.Set(late, timeout=20))
                await asyncio.sleep(0.3)
                deleting = asyncio.ensure_future(
                    admin.DeleteNamespace(apb.DeleteNamespaceRequest(namespace="r"), timeout=20)
                )
                await asyncio.sleep(0.5)
                assert not deleting.done()  # waiting for the stalled Set
                listed = await admin.ListNamespaces(apb.ListNamespacesRequest())
                assert [n.name for n in listed.namespaces] == ["default"]
                with pytest.raises(grpc.aio.AioRpcError) as refused:  # no new calls
                    await cache.Get(pb.GetRequest(namespace="r", key="warm"), timeout=5)
                assert refused.value.code() == grpc.StatusCode.NOT_FOUND
            finally:
                os.kill(pid, signal.SIGCONT)
            assert (await setting).stored
            await deleting
            assert checker.exists("cachekit:r:late")  # landed before the delete returned
            for _ in range(50):  # the namespace's connections are closed, none leaked
                if len(checker.client_list()) == 1:
                    break
                await asyncio.sleep(0.05)
            assert len(checker.client_list()) == 1

    with ThreadedServer(namespaces) as srv:
        asyncio.run(scenario(srv.target))
    checker.close()


def test_deleted_namespace_metrics_are_dropped() -> None:
    namespaces = Namespaces()
    namespaces.create("default")
    with ThreadedServer(namespaces) as srv, grpc.insecure_channel(srv.target) as ch:
        cache, admin = pb_grpc.CacheServiceStub(ch), apb_grpc.CacheAdminServiceStub(ch)
        admin.CreateNamespace(apb.CreateNamespaceRequest(namespace="t"))
        for _ in range(5):
            cache.Get(pb.GetRequest(namespace="t", key="k"))
        admin.DeleteNamespace(apb.DeleteNamespaceRequest(namespace="t"))
        assert srv.server.metrics.counts("t") == []
        assert all(ns != "t" for _m, ns, _s in srv.server.metrics._series())
        admin.CreateNamespace(apb.CreateNamespaceRequest(namespace="t"))
        rpcs = admin.GetNamespaceStats(apb.GetNamespaceStatsRequest(namespace="t")).rpcs
        assert [(r.method, r.code, r.count) for r in rpcs] == [("CreateNamespace", "OK", 1)]


# -- second reading ------------------------------------------------------------------------------


def test_reconfiguring_an_added_memory_cache_keeps_its_bounds() -> None:
    """A cache handed over without a URL lost max_entries and max_memory_bytes."""
    from cachekit import create_cache

    namespaces = Namespaces()
    ns = namespaces.add(
        "m", create_cache("memory://?max_entries=5&max_memory_bytes=100000"), owned=True
    )
    ns.reconfigure_memory(policy="lfu")
    assert ns.policy() == {
        "eviction_policy": "lfu",
        "max_entries": 5,
        "max_memory_bytes": 100000,
    }
    namespaces.close()


def test_a_release_cancelled_while_it_waits_still_closes_the_cache(
    redis_server: RedisServer,
) -> None:
    """A DeleteNamespace cancelled during its wait for running calls never closed the cache it
    had removed, which nothing owned any more (a Redis connection leaked)."""

    async def main() -> None:
        namespaces = Namespaces()
        ns = namespaces.create("gone", redis_server.url)
        ns.cache.set("k", 1)  # its sync client: close() drops it
        ns.running = 1  # a call still running on it
        waiting = asyncio.ensure_future(namespaces.release(ns, 30))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert ns.cache._client is None  # type: ignore[attr-defined]  # closed
        await namespaces.aclose()

    asyncio.run(main())


def test_the_tls_check_takes_what_grpc_serves(tmp_path: Any) -> None:
    """OpenSSL 3's default security level refused a 1024-bit RSA certificate grpc serves."""
    import subprocess

    from cachekit.grpc.server import server_credentials

    cert, key = tmp_path / "weak.crt", tmp_path / "weak.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:1024", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    assert server_credentials(str(cert), str(key), None) is not None


def test_a_namespace_recreated_during_the_delete_wait_starts_at_zero(
    fresh_redis_server: RedisServer,
) -> None:
    """Calls still running on the deleted namespace were counted for the new one: its label
    was taken when they ended, by name."""
    server = fresh_redis_server
    namespaces = Namespaces()
    namespaces.create("default")
    namespaces.create("r", f"{server.url}?socket_timeout=30")

    async def scenario(target: str) -> list[tuple[str, str, int]]:
        async with grpc.aio.insecure_channel(target) as channel:
            cache = pb_grpc.CacheServiceStub(channel)
            admin = apb_grpc.CacheAdminServiceStub(channel)
            assert server.pid is not None
            os.kill(server.pid, signal.SIGSTOP)
            try:
                request = pb.SetRequest(namespace="r", key="late", value=pb.Value(data=b"y"))
                setting = asyncio.ensure_future(cache.Set(request, timeout=20))
                old = namespaces.get("r")
                await _until(lambda: old.running > 0)  # the Set is in flight, stalled
                deleting = asyncio.ensure_future(
                    admin.DeleteNamespace(apb.DeleteNamespaceRequest(namespace="r"), timeout=20)
                )
                await _until(lambda: "r" not in namespaces)  # the delete waits for the Set
                await admin.CreateNamespace(apb.CreateNamespaceRequest(namespace="r"))
            finally:
                os.kill(server.pid, signal.SIGCONT)
            await setting
            await deleting
            stats = await admin.GetNamespaceStats(apb.GetNamespaceStatsRequest(namespace="r"))
            return [(x.method, x.code, x.count) for x in stats.rpcs]

    with ThreadedServer(namespaces) as running:
        rpcs = asyncio.run(scenario(running.target))
    assert rpcs == [("CreateNamespace", "OK", 1)]


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` (state the server's thread changes) until true, at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
