"""Review fixes of the gRPC server's start-up: metrics port, TLS files (real servers)."""

from __future__ import annotations

import asyncio
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachekit import create_cache
from cachekit.errors import ConfigurationError
from cachekit.grpc.namespaces import Namespaces
from cachekit.grpc.server import CacheServer, serve
from cachekit.testing.servers import RedisServer, make_self_signed_cert


@pytest.fixture
def busy_port() -> Iterator[int]:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    yield blocker.getsockname()[1]
    blocker.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_metrics_port_in_use_fails_start_before_the_grpc_port_serves(busy_port: int) -> None:
    grpc_port = _free_port()

    async def scenario() -> None:
        server = CacheServer(
            {"default": create_cache("memory://")}, port=grpc_port, metrics_port=busy_port
        )
        with pytest.raises(OSError, match=f"metrics on 127.0.0.1:{busy_port}"):
            await server.start()
        assert server._server is None
        with socket.socket() as probe:  # nothing listens on the gRPC port
            assert probe.connect_ex(("127.0.0.1", grpc_port)) != 0

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(scenario())


def test_serve_closes_url_caches_when_start_fails(
    busy_port: int, redis_server: RedisServer
) -> None:
    namespaces = Namespaces()
    ns = namespaces.create("default", redis_server.url)
    ns.cache.set("k", 1)  # connected
    with pytest.raises(OSError, match=f"metrics on 127.0.0.1:{busy_port}"):
        serve(namespaces, port=0, metrics_port=busy_port)
    assert ns.cache._client is None  # type: ignore[attr-defined]  # closed by serve()


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    cert, key = make_self_signed_cert(one)
    _other_cert, other_key = make_self_signed_cert(two)
    garbage = one / "garbage.pem"
    garbage.write_text("garbage\n")
    return {"cert": cert, "key": key, "other_key": other_key, "garbage": garbage}


@pytest.mark.parametrize(
    "case",
    [
        ("garbage", "key", None, "tls_cert", "garbage"),
        ("key", "key", None, "tls_cert", "key"),
        ("cert", "garbage", None, "tls_key", "garbage"),
        ("cert", "other_key", None, "tls_key", "other_key"),
        ("cert", "key", "garbage", "tls_client_ca", "garbage"),
    ],
)
def test_bad_pem_files_are_named_at_construction(
    pems: dict[str, Path], case: tuple[str, str, str | None, str, str]
) -> None:
    """grpc reported any of these as a failure to bind the port, naming no file."""
    cert, key, ca, option, bad = case
    with pytest.raises(ConfigurationError, match=f"^{option}: '.*{pems[bad].name}'") as info:
        CacheServer(
            {"default": create_cache("memory://")},
            port=0,
            tls_cert=str(pems[cert]),
            tls_key=str(pems[key]),
            tls_client_ca=str(pems[ca]) if ca else None,
        )
    assert info.value.key == option
