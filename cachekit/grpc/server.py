"""``serve()``: the gRPC cache server, wired from servicers, health, reflection, interceptors.

grpcio's asyncio server (``grpc.aio``) runs every RPC on one event loop; the core's async twins
keep network providers off it. Bound to 127.0.0.1 unless told otherwise; bearer tokens, TLS and
mutual TLS by option; message size limits; on SIGTERM/SIGINT the server stops taking calls,
lets running ones finish for a grace period, then returns. See ``docs/grpc.md``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from ..errors import ConfigurationError
from ..interfaces import Cache
from ..v1 import admin_pb2, admin_pb2_grpc, cache_pb2, cache_pb2_grpc
from .admin import AdminServicer
from .interceptors import (
    AuthInterceptor,
    CallTracker,
    Handler,
    MethodInterceptor,
    MetricsInterceptor,
    StatusInterceptor,
    wrap_handler,
)
from .metrics import RpcMetrics
from .namespaces import Namespaces
from .servicer import (
    DEFAULT_MAX_KEY_BYTES,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
    CacheServicer,
)

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "CacheServer", "serve", "server_options"]

log = logging.getLogger("cachekit.grpc")

#: Seconds running calls get to finish after SIGTERM.
DEFAULT_GRACE = 5.0

#: Seconds the streams still open at shutdown get, once no other call is running, before they
#: are cancelled (Watch streams end at their next event, which is the stop; one blocked sending
#: to a client that does not read never gets there).
STREAM_END_WAIT = 0.5

SERVICE_NAMES = (
    cache_pb2.DESCRIPTOR.services_by_name["CacheService"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["CacheAdminService"].full_name,
)


def server_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, Any]]:
    """The grpc.aio server options :func:`serve` uses (the benchmark's echo floor uses them too)."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]


def _read(path: str | None, option: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{option}: cannot read {path!r}: {exc}", key=option) from None


def server_credentials(
    tls_cert: str | None, tls_key: str | None, tls_client_ca: str | None
) -> grpc.ServerCredentials | None:
    """TLS credentials (mutual TLS when a client CA is given), or None for plaintext."""
    if tls_cert is None and tls_key is None:
        if tls_client_ca is not None:
            raise ConfigurationError(
                "tls_client_ca needs tls_cert and tls_key", key="tls_client_ca"
            )
        return None
    if tls_cert is None or tls_key is None:
        missing = "tls_key" if tls_key is None else "tls_cert"
        raise ConfigurationError(
            f"TLS needs both tls_cert and tls_key; {missing} is missing", key=missing
        )
    cert, key = _read(tls_cert, "tls_cert"), _read(tls_key, "tls_key")
    assert cert is not None
    assert key is not None
    client_ca = _read(tls_client_ca, "tls_client_ca")
    _check_pem(tls_cert, tls_key, tls_client_ca)
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def _check_pem(tls_cert: str, tls_key: str, tls_client_ca: str | None) -> None:
    """Parse the PEM files with the ``ssl`` module first: grpc only fails the bind on a bad one
    ("Failed to bind to address"), which names neither the file nor the problem."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Parse only, as grpc's own TLS would take them: OpenSSL 3's default security level 2
    # refused 1024-bit RSA and SHA-1 certificates that grpc serves.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    checks: list[tuple[str, str, str, Callable[[], None]]] = [
        (
            "tls_cert",
            tls_cert,
            "no PEM certificate",
            lambda: context.load_verify_locations(tls_cert),
        ),
        (
            "tls_key",
            tls_key,
            "not an unencrypted PEM private key of tls_cert",
            lambda: context.load_cert_chain(tls_cert, tls_key, password=lambda: b""),
        ),
    ]
    if tls_client_ca is not None:
        checks.append(
            (
                "tls_client_ca",
                tls_client_ca,
                "no PEM CA certificate",
                lambda: context.load_verify_locations(tls_client_ca),
            )
        )
    for option, path, problem, load in checks:
        try:
            load()
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigurationError(
                f"{option}: {path!r} holds {problem} ({exc})", key=option
            ) from None


class _ServerCollector:
    """Prometheus: the RPC metrics, and the stats of whatever namespaces exist at scrape time."""

    def __init__(self, namespaces: Namespaces, metrics: RpcMetrics) -> None:
        self.namespaces = namespaces
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from ..metrics.prometheus import CacheCollector

        caches = CacheCollector()
        for ns in self.namespaces:
            try:
                caches.add(ns.cache)
            except ConfigurationError as exc:  # two caches of one name: export the first only
                log.warning("namespace %r is not exported to Prometheus: %s", ns.name, exc)
        yield from caches.collect()
        yield from self.metrics.collect()


class _Methods(grpc.GenericRpcHandler):
    """Every method the server serves, by full name, each handler wrapped once by the interceptors.

    The generated ``add_*_to_server`` functions are handed this object instead of the server:
    they give it each service's handlers (``add_registered_method_handlers``), and the server
    gets it as its only generic handler, so finding a call's handler is one dict lookup.
    Registered methods are avoided on purpose: grpc.aio keeps one pending request per registered
    method (26 across these four services) and ``asyncio.wait``s on all of them for every call,
    which cost about a fifth of the server's CPU per ``Get``.
    """

    def __init__(self, interceptors: Sequence[MethodInterceptor]) -> None:
        self.interceptors = interceptors
        self.handlers: dict[str, Handler] = {}
        self.services: set[str] = set()

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Ignored: generated code passes the same handlers to the method below."""

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Handler]) -> None:
        for name, handler in handlers.items():
            method = f"/{service}/{name}"
            self.handlers[method] = wrap_handler(method, handler, self.interceptors)
        self.services.add(service)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        return self.handlers.get(handler_call_details.method)


class CacheServer:
    """One server: build it, ``await start()`` (returns the port), ``await stop()``."""

    def __init__(
        self,
        namespaces: Mapping[str, Cache] | Namespaces,
        *,
        host: str = "127.0.0.1",
        port: int = 50051,
        token: str | None = None,
        admin_token: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_client_ca: str | None = None,
        metrics_port: int | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        max_key_bytes: int | None = None,
        watch_queue_size: int = 1024,
    ) -> None:
        if type(port) is not int or not 0 <= port <= 65535:
            raise ConfigurationError(f"port must be 0-65535, got {port!r}", key="port")
        if metrics_port is not None and (
            type(metrics_port) is not int or not 0 <= metrics_port <= 65535
        ):
            raise ConfigurationError(
                f"metrics_port must be 0-65535, got {metrics_port!r}", key="metrics_port"
            )
        if max_value_bytes < 1 or max_message_bytes < max_value_bytes:
            raise ConfigurationError(
                "max_value_bytes must be >= 1 and at most max_message_bytes", key="max_value_bytes"
            )
        if max_key_bytes is None:  # 64 KiB, or a quarter of a smaller message limit
            max_key_bytes = max(1, min(DEFAULT_MAX_KEY_BYTES, max_message_bytes // 4))
        if not 1 <= max_key_bytes <= max_message_bytes // 4:
            raise ConfigurationError(
                "max_key_bytes must be >= 1 and at most a quarter of max_message_bytes",
                key="max_key_bytes",
            )
        self.namespaces = (
            namespaces
            if isinstance(namespaces, Namespaces)
            else Namespaces(namespaces, queue_size=watch_queue_size)
        )
        self.host, self.port = host, port
        self.credentials = server_credentials(tls_cert, tls_key, tls_client_ca)
        self.metrics = RpcMetrics()
        self.metrics_port = metrics_port
        self.metrics_server: Any = None
        self.max_message_bytes = max_message_bytes
        self.max_value_bytes = max_value_bytes
        self.max_key_bytes = max_key_bytes
        #: The running calls that answer once: shutdown cancels the streams left after them.
        self.calls = CallTracker(self.namespaces)
        self.interceptors: list[MethodInterceptor] = [
            MetricsInterceptor(self.metrics, self.namespaces),
            self.calls,
            AuthInterceptor(token, admin_token),
            StatusInterceptor(),
        ]
        self.health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> int:
        """Bind, start serving, mark every service SERVING; return the bound port."""
        methods = _Methods(self.interceptors)
        registry: Any = methods  # stands in for the server the generated code expects
        cache_pb2_grpc.add_CacheServiceServicer_to_server(
            CacheServicer(
                self.namespaces,
                max_value_bytes=self.max_value_bytes,
                max_key_bytes=self.max_key_bytes,
                max_message_bytes=self.max_message_bytes,
            ),
            registry,
        )
        admin_pb2_grpc.add_CacheAdminServiceServicer_to_server(
            AdminServicer(self.namespaces, self.metrics), registry
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, registry)
        add_reflection: Any = reflection_pb2_grpc.add_ServerReflectionServicer_to_server
        add_reflection(
            reflection.aio.ReflectionServicer(
                (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME)
            ),
            registry,
        )
        missing = {*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME} - methods.services
        if missing:  # generated code that no longer registers its methods
            raise RuntimeError(f"no handlers were registered for {sorted(missing)}")
        # Metrics first: a port in use then fails start() before the gRPC port is even bound.
        if self.metrics_port is not None:
            self._start_metrics()
        server = grpc.aio.server(options=server_options(self.max_message_bytes))
        try:
            server.add_generic_rpc_handlers((methods,))
            target = (
                f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
            )
            try:
                if self.credentials is None:
                    bound = server.add_insecure_port(target)
                else:
                    bound = server.add_secure_port(target, self.credentials)
            except RuntimeError as exc:
                raise OSError(f"cannot listen on {target}: {exc}") from None
            if not bound:
                raise OSError(f"cannot listen on {target}")
            self.port = bound
            await server.start()
        except BaseException:
            # Stopped here, on this loop: left to __del__ it stops on a loop that may be closed.
            await server.stop(None)
            self._stop_metrics()
            raise
        self._server = server
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("cachekit gRPC server listening on %s", self.address)
        return bound

    def _start_metrics(self) -> None:
        from prometheus_client import CollectorRegistry

        from ..metrics.prometheus import start_metrics_server

        registry = CollectorRegistry()
        registry.register(_ServerCollector(self.namespaces, self.metrics))
        assert self.metrics_port is not None
        try:
            self.metrics_server, _thread = start_metrics_server(
                self.metrics_port, addr=self.host, registry=registry
            )
        except OSError as exc:
            where = f"[{self.host}]" if ":" in self.host else self.host
            failure = OSError(
                f"cannot serve metrics on {where}:{self.metrics_port}: {exc.strerror or exc}"
            )
            failure.errno = exc.errno
            raise failure from None
        self.metrics_port = self.metrics_server.server_port

    def _stop_metrics(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
            self.metrics_server = None

    async def _cut_short(
        self, server: grpc.aio.Server, stopping: asyncio.Future[None], grace: float | None
    ) -> None:
        """Once the calls that answer once have finished, give the streams left (Watch streams
        end at their next event; health Watch, reflection) :data:`STREAM_END_WAIT` seconds, then
        cancel them: a Watch handler blocked sending to a client that does not read, with its
        backlog, would otherwise hold shutdown for the whole grace."""
        if grace is not None and grace <= STREAM_END_WAIT:
            return  # the grace is as short
        loop = asyncio.get_running_loop()
        streams_since: float | None = None
        while not stopping.done():
            now = loop.time()
            if self.calls.running:
                streams_since = None
            elif streams_since is None:
                streams_since = now
            elif now - streams_since >= STREAM_END_WAIT:
                log.info("cancelling the streams still open after the other calls finished")
                await server.stop(None)  # a smaller grace cuts the running stop short
                return
            await asyncio.sleep(0.02)

    async def stop(self, grace: float | None = DEFAULT_GRACE) -> None:
        """Refuse new calls, let running ones finish within ``grace`` seconds, close caches."""
        server, self._server = self._server, None
        if server is None:
            return
        await self.health.enter_graceful_shutdown()
        for ns in self.namespaces:  # Watch streams never finish on their own: end them
            ns.hub.end_all()
        stopping = asyncio.ensure_future(server.stop(grace))  # refuses new calls from now on
        await self._cut_short(server, stopping, grace)
        await stopping
        self._stop_metrics()
        await self.namespaces.aclose()


def serve(
    namespaces: Mapping[str, Cache] | Namespaces,
    *,
    host: str = "127.0.0.1",
    port: int = 50051,
    token: str | None = None,
    admin_token: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_client_ca: str | None = None,
    metrics_port: int | None = None,
    ready: Callable[[int], None] | None = None,
    metrics_ready: Callable[[int], None] | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    max_key_bytes: int | None = None,
    grace: float = DEFAULT_GRACE,
) -> None:
    """Serve ``namespaces`` until SIGTERM/SIGINT, then shut down gracefully and return.

    ``port=0`` picks a free port; ``ready(port)`` is called once the server is listening, then
    ``metrics_ready(port)`` with the bound metrics port if there is one (``metrics_port=0``).
    Bad options raise :class:`~cachekit.errors.ConfigurationError` before anything is bound.
    """
    server = CacheServer(
        namespaces,
        host=host,
        port=port,
        token=token,
        admin_token=admin_token,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        metrics_port=metrics_port,
        max_message_bytes=max_message_bytes,
        max_value_bytes=max_value_bytes,
        max_key_bytes=max_key_bytes,
    )
    asyncio.run(_run(server, ready, grace, metrics_ready))


async def _run(
    server: CacheServer,
    ready: Callable[[int], None] | None,
    grace: float,
    metrics_ready: Callable[[int], None] | None = None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        try:
            port = await server.start()
        except BaseException:  # nothing is served: still close the caches built from URLs
            await server.namespaces.aclose()
            raise
        if ready is not None:
            ready(port)
        if metrics_ready is not None and server.metrics_port is not None:
            metrics_ready(server.metrics_port)
        await stop.wait()
        log.info("cachekit gRPC server shutting down (grace %.1fs)", grace)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await server.stop(grace)
