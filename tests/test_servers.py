"""The real test servers of :mod:`cachekit.testing.servers`, driven with the real clients."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pymemcache.client.base import Client as MemcacheClient
from pymemcache.exceptions import MemcacheUnexpectedCloseError

from cachekit.testing import servers
from cachekit.testing.servers import (
    MISSING_SERVER_MARK,
    BinaryNotFound,
    MemcachedServer,
    RedisServer,
    ServerStartError,
    find_binary,
    require_binary,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def redis_client(fresh_redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(fresh_redis_server.url, socket_timeout=5)
    yield client
    client.close()


def memcache_client(server: MemcachedServer) -> MemcacheClient:
    return MemcacheClient((server.host, server.port), no_delay=True, timeout=5, connect_timeout=5)


# -- round trips ----------------------------------------------------------------------------------


def test_redis_round_trip(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.port != 6379
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.set("cachekit:servers:rt", b"value")
        assert client.get("cachekit:servers:rt") == b"value"
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.info("server")["process_id"] == redis_server.pid
    finally:
        client.delete("cachekit:servers:rt")
        client.close()


def test_memcached_round_trip(memcached_server: MemcachedServer) -> None:
    assert memcached_server.url == f"memcached://127.0.0.1:{memcached_server.port}"
    assert memcached_server.port != 11211
    client = memcache_client(memcached_server)
    try:
        client.set("cachekit-servers-rt", b"value")
        assert client.get("cachekit-servers-rt") == b"value"
        assert int(client.stats()[b"pid"]) == memcached_server.pid
    finally:
        client.delete("cachekit-servers-rt")
        client.close()


def test_tests_without_server_fixtures_are_not_marked(request: pytest.FixtureRequest) -> None:
    # This test uses no server fixture, so the collection hook must leave it unmarked...
    assert request.node.get_closest_marker("servers") is None


def test_server_fixture_users_are_marked(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> None:
    # ...and mark the ones that do, so `-m "not servers"` deselects them.
    assert request.node.get_closest_marker("servers") is not None


def test_two_servers_get_different_ports(redis_binary: str, memcached_binary: str) -> None:
    with (
        RedisServer(binary=redis_binary) as first,
        RedisServer(binary=redis_binary) as second,
        MemcachedServer(binary=memcached_binary) as third,
    ):
        assert len({first.port, second.port, third.port}) == 3
        assert first.pid != second.pid


def test_memcached_options_are_passed(memcached_binary: str) -> None:
    with MemcachedServer({"-I": "2m", "-m": 16}, binary=memcached_binary) as server:
        client = memcache_client(server)
        try:
            settings = client.stats("settings")
            assert int(settings[b"item_size_max"]) == 2 * 1024 * 1024
            assert int(settings[b"maxbytes"]) == 16 * 1024 * 1024
        finally:
            client.close()


def test_redis_config_is_passed_and_persists_across_restart(redis_binary: str) -> None:
    config = {"appendonly": "yes", "appendfsync": "always"}
    with RedisServer(config, binary=redis_binary) as server:
        client = redis.Redis.from_url(server.url)
        try:
            client.set("kept", b"1")
            port = server.port
            server.kill()  # an AOF with fsync=always survives SIGKILL
            server.restart()
            assert server.port == port
            assert client.get("kept") == b"1"
        finally:
            client.close()
    assert server.data_dir is None  # close() removed it


def test_requirepass_is_used_by_probe_and_url(redis_binary: str) -> None:
    with RedisServer({"requirepass": "s3cret/:@"}, binary=redis_binary) as server:
        assert server.url.startswith("redis://:s3cret%2F%3A%40@127.0.0.1:")
        client = redis.Redis.from_url(server.url)
        try:
            assert client.ping()
        finally:
            client.close()


# -- outages --------------------------------------------------------------------------------------


def test_redis_kill_and_restart_on_same_port(
    fresh_redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    server = fresh_redis_server
    redis_client.set("before", b"1")
    port, pid = server.port, server.pid
    server.kill()
    assert not server.running
    with pytest.raises(redis.ConnectionError):
        redis_client.get("before")
    server.restart()
    assert (server.port, server.running) == (port, True)
    assert server.pid != pid
    # The same client reconnects by itself; nothing was persisted.
    assert redis_client.get("before") is None
    redis_client.set("after", b"2")
    assert redis_client.get("after") == b"2"


def test_memcached_kill_and_restart_on_same_port(fresh_memcached_server: MemcachedServer) -> None:
    server = fresh_memcached_server
    client = memcache_client(server)
    try:
        client.set("before", b"1")
        port = server.port
        server.kill()
        with pytest.raises((MemcacheUnexpectedCloseError, OSError)):
            client.get("before")
        server.restart()
        assert server.port == port
        assert client.get("before") is None
        client.set("after", b"2")
        assert client.get("after") == b"2"
    finally:
        client.close()


def test_stop_is_graceful_and_idempotent(fresh_redis_server: RedisServer) -> None:
    fresh_redis_server.stop()
    fresh_redis_server.stop()
    fresh_redis_server.kill()
    assert not fresh_redis_server.running
    assert fresh_redis_server.start().running


# -- start-up failures ----------------------------------------------------------------------------


def test_port_held_by_a_stranger_gives_a_clear_error(redis_binary: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = RedisServer(binary=redis_binary, port=port, startup_timeout=5)
        with pytest.raises(ServerStartError, match="Address already in use"):
            server.start()
        assert not server.running
        server.close()


def test_lost_port_race_is_retried_on_a_new_port(
    monkeypatch: pytest.MonkeyPatch, memcached_binary: str
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        real_free_port = servers.free_port
        ports = iter([taken])
        # Simulate another process grabbing the port between free_port() and the server's bind.
        monkeypatch.setattr(servers, "free_port", lambda: next(ports, None) or real_free_port())
        with MemcachedServer(binary=memcached_binary) as server:
            assert server.port != taken
            client = memcache_client(server)
            try:
                assert client.version()
            finally:
                client.close()


def test_a_server_that_exits_reports_its_log(redis_binary: str) -> None:
    server = RedisServer({"no-such-directive": "1"}, binary=redis_binary, startup_timeout=5)
    with pytest.raises(ServerStartError, match="no-such-directive"):
        server.start()
    server.close()


@pytest.mark.parametrize("port", [6379, 11211])
def test_well_known_ports_are_refused(port: int) -> None:
    with pytest.raises(ValueError, match="reserved"):
        RedisServer(port=port)


def test_managed_options_are_refused() -> None:
    with pytest.raises(ValueError, match="port"):
        RedisServer({"port": 1234})
    with pytest.raises(ValueError, match="-p"):
        MemcachedServer({"-p": 1234})


# -- missing binaries -----------------------------------------------------------------------------


@pytest.fixture
def missing_redis(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    path = str(tmp_path / "no-redis-server")
    monkeypatch.setenv("CACHEKIT_REDIS_SERVER", path)
    return path


def test_env_override_wins(monkeypatch: pytest.MonkeyPatch, memcached_binary: str) -> None:
    real = memcached_binary
    monkeypatch.setenv("CACHEKIT_MEMCACHED", real)
    assert find_binary("memcached") == real
    assert require_binary("memcached") == real


def test_missing_binary_skips(monkeypatch: pytest.MonkeyPatch, missing_redis: str) -> None:
    monkeypatch.delenv("CACHEKIT_REQUIRE_SERVERS", raising=False)
    assert find_binary("redis-server") is None
    with pytest.raises(pytest.skip.Exception) as excinfo:
        require_binary("redis-server")
    message = str(excinfo.value)
    assert MISSING_SERVER_MARK in message
    assert missing_redis in message
    assert "apt-get install redis-server" in message


def test_missing_binary_fails_when_servers_are_required(
    monkeypatch: pytest.MonkeyPatch, missing_redis: str
) -> None:
    monkeypatch.setenv("CACHEKIT_REQUIRE_SERVERS", "1")
    with pytest.raises(pytest.fail.Exception) as excinfo:
        require_binary("redis-server")
    message = str(excinfo.value)
    assert "apt-get install redis-server" in message
    assert "CACHEKIT_REQUIRE_SERVERS" in message


def test_missing_binary_without_pytest_raises(missing_redis: str) -> None:
    with pytest.raises(BinaryNotFound, match="apt-get install redis-server"):
        RedisServer()


def _run_pytest(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_suite_skips_loudly_or_fails_without_a_server(tmp_path: Path) -> None:
    # End to end through conftest: the session fixture skips, and the summary says why.
    target = "tests/test_servers.py::test_redis_round_trip"
    missing = str(tmp_path / "nowhere" / "redis-server")
    skipped = _run_pytest(target, CACHEKIT_REDIS_SERVER=missing, CACHEKIT_REQUIRE_SERVERS="0")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "1 skipped" in skipped.stdout
    assert "cachekit: server tests skipped" in skipped.stdout
    assert "apt-get install redis-server" in skipped.stdout

    failed = _run_pytest(target, CACHEKIT_REDIS_SERVER=missing, CACHEKIT_REQUIRE_SERVERS="1")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "1 error" in failed.stdout
    assert "apt-get install redis-server" in failed.stdout
