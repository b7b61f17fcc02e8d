"""Shared fixtures of the cachekit test suite.

Real servers come from :mod:`cachekit.testing.servers`: a missing ``redis-server``/``memcached``
skips the tests that need it (and says so loudly at the end of the run), or fails them when
``CACHEKIT_REQUIRE_SERVERS=1``, as CI sets.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cachekit.testing.servers import (
    MISSING_SERVER_MARK,
    MemcachedServer,
    RedisCluster,
    RedisSentinel,
    RedisServer,
    TLSRedisServer,
    require_binary,
)

# -- real servers ---------------------------------------------------------------------------------

_SERVER_FIXTURES = frozenset(
    {
        "redis_binary",
        "memcached_binary",
        "redis_server",
        "memcached_server",
        "fresh_redis_server",
        "fresh_memcached_server",
    }
)


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """Path of ``redis-server``, for tests that build a :class:`RedisServer` of their own."""
    return require_binary("redis-server")


@pytest.fixture(scope="session")
def memcached_binary() -> str:
    """Path of ``memcached``, for tests that build a :class:`MemcachedServer` of their own."""
    return require_binary("memcached")


@pytest.fixture(scope="session")
def redis_server(redis_binary: str) -> Iterator[RedisServer]:
    """One ``redis-server`` for the whole session; tests must not stop or kill it."""
    with RedisServer(binary=redis_binary) as server:
        yield server


@pytest.fixture(scope="session")
def memcached_server(memcached_binary: str) -> Iterator[MemcachedServer]:
    """One ``memcached`` for the whole session; tests must not stop or kill it."""
    with MemcachedServer(binary=memcached_binary) as server:
        yield server


@pytest.fixture
def fresh_redis_server(redis_binary: str) -> Iterator[RedisServer]:
    """A ``redis-server`` of the test's own, free to be killed and restarted."""
    with RedisServer(binary=redis_binary) as server:
        yield server


@pytest.fixture
def fresh_memcached_server(memcached_binary: str) -> Iterator[MemcachedServer]:
    """A ``memcached`` of the test's own, free to be killed and restarted."""
    with MemcachedServer(binary=memcached_binary) as server:
        yield server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Mark server-backed tests automatically so `-m "not servers"` deselects them.
    for item in items:
        if _SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.servers)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # A skip for a missing server is easy to miss among the dots: repeat it in its own section.
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        if isinstance(longrepr, tuple) and MISSING_SERVER_MARK in str(longrepr[2]):
            reason = str(longrepr[2]).removeprefix("Skipped: ")
            reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.section("cachekit: server tests skipped", sep="!", yellow=True, bold=True)
        for reason, count in reasons.items():
            terminalreporter.write_line(f"{count} test(s) skipped: {reason}", yellow=True)


# -- Redis over a unix socket, TLS and Sentinel (tests/test_redis*.py) ---------------------------


@pytest.fixture(scope="session")
def redis_unix_server(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``redis-server`` listening on a unix socket too; yields its ``unix://`` URL."""
    sock = tmp_path_factory.mktemp("redis-sock") / "redis.sock"
    config = {"unixsocket": str(sock), "unixsocketperm": "700"}
    with RedisServer(config, binary=redis_binary):
        yield f"unix://{sock}?db=0"


@pytest.fixture(scope="session")
def redis_tls_server(redis_binary: str) -> Iterator[TLSRedisServer]:
    """A ``redis-server`` with TLS on a self-signed certificate (``.url`` is ``rediss://``)."""
    import os
    import shutil

    if shutil.which("openssl") is None:  # pragma: no cover - a certificate needs the CLI
        message = f"{MISSING_SERVER_MARK}: openssl (to make the TLS server's certificate)"
        if os.environ.get("CACHEKIT_REQUIRE_SERVERS", "") not in ("", "0"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with TLSRedisServer(binary=redis_binary) as server:
        yield server


@pytest.fixture(scope="session")
def redis_sentinel(redis_binary: str) -> Iterator[RedisSentinel]:
    """A master ``redis-server`` and one Sentinel monitoring it as ``mymaster``."""
    with (
        RedisServer(binary=redis_binary) as master,
        RedisSentinel(master, binary=redis_binary) as sentinel,
    ):
        yield sentinel


# -- memcached pools (the memcached provider's tests) ----------------------------------------------


@pytest.fixture
def memcached_cluster(memcached_binary: str) -> Iterator[list[MemcachedServer]]:
    """Three ``memcached`` servers of the test's own, for consistent hashing and failover."""
    servers = [MemcachedServer(binary=memcached_binary) for _ in range(3)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.close()


# -- Redis Cluster (tests/test_redis_cluster.py) ---------------------------------------------------


@pytest.fixture(scope="session")
def redis_cluster(redis_binary: str) -> Iterator[RedisCluster]:
    """A local Redis Cluster (3 primaries + 3 replicas) for the session; never killed."""
    with RedisCluster(binary=redis_binary) as cluster:
        yield cluster


@pytest.fixture
def fresh_redis_cluster(redis_binary: str) -> Iterator[RedisCluster]:
    """A Redis Cluster of the test's own, free to lose a primary."""
    with RedisCluster(binary=redis_binary) as cluster:
        yield cluster
