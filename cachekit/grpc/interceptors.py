"""Server interceptors, each doing one thing: metrics, bearer-token auth, errors to statuses.

Order (outermost first): :class:`MetricsInterceptor` sees every call, rejected ones included;
:class:`AuthInterceptor` rejects before a servicer runs; :class:`StatusInterceptor` turns the
core's exceptions into status codes with a message, so no exception escapes unhandled and no
connection is dropped. Wrapped handlers are built once per method, not per call.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc
import grpc.aio

from ..errors import (
    BackendUnavailable,
    CacheError,
    ConfigurationError,
    InvalidArgument,
    InvalidKey,
    NotAnInteger,
    SerializationError,
    UnsupportedOperation,
    ValueTooLarge,
)
from .metrics import RpcMetrics
from .namespaces import NamespaceExists, NamespaceNotFound
from .namespaces import UnsupportedPolicy as _UnsupportedPolicy

__all__ = [
    "ADMIN_METHODS",
    "ERROR_KEY",
    "AuthInterceptor",
    "MetricsInterceptor",
    "StatusInterceptor",
    "status_of",
]

log = logging.getLogger("cachekit.grpc")

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic in the stubs only
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable["Handler | None"]]

#: Methods that need the admin token when the server has one.
ADMIN_PREFIX = "/cachekit.v1.CacheAdminService/"
ADMIN_METHODS = frozenset({"/cachekit.v1.CacheService/Flush"})
#: Methods open without a token (load balancers and orchestrators probe them).
OPEN_PREFIX = "/grpc.health.v1.Health/"

_STATUS: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (NamespaceNotFound, grpc.StatusCode.NOT_FOUND),
    (NamespaceExists, grpc.StatusCode.ALREADY_EXISTS),
    (NotAnInteger, grpc.StatusCode.FAILED_PRECONDITION),
    (UnsupportedOperation, grpc.StatusCode.FAILED_PRECONDITION),
    (_UnsupportedPolicy, grpc.StatusCode.FAILED_PRECONDITION),
    (BackendUnavailable, grpc.StatusCode.UNAVAILABLE),
    (InvalidKey, grpc.StatusCode.INVALID_ARGUMENT),
    (ValueTooLarge, grpc.StatusCode.INVALID_ARGUMENT),
    (ConfigurationError, grpc.StatusCode.INVALID_ARGUMENT),
    (SerializationError, grpc.StatusCode.INTERNAL),
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (TypeError, grpc.StatusCode.INVALID_ARGUMENT),
    (ValueError, grpc.StatusCode.INVALID_ARGUMENT),
    (CacheError, grpc.StatusCode.INTERNAL),
)


#: Trailing metadata naming the cachekit error class, so Python clients raise the same one.
ERROR_KEY = "cachekit-error"


async def _abort(context: grpc.aio.ServicerContext[Any, Any], exc: Exception) -> None:
    code, message = status_of(exc)
    kind = type(exc).__name__ if isinstance(exc, CacheError) else ""
    await context.abort(code, message, trailing_metadata=((ERROR_KEY, kind),) if kind else ())


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a failure is reported with."""
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            message = str(exc)
            key = getattr(exc, "key", None)
            if isinstance(exc, ConfigurationError) and key and key not in message:
                message = f"{key}: {message}"
            return code, message or type(exc).__name__
    log.exception("unexpected error in a gRPC handler", exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__})"


def _rewrap(handler: Handler, unary: Any, stream: Any) -> Handler:
    """``handler`` with its behaviour wrapped (unary-unary and unary-stream methods)."""
    if handler.request_streaming:
        return handler  # reflection's bidirectional stream: left as it is
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(
            stream(handler.unary_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return grpc.unary_unary_rpc_method_handler(
        unary(handler.unary_unary),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class _Wrapping(grpc.aio.ServerInterceptor):
    """Caches one wrapped handler per method."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    def wrap(self, method: str, handler: Handler) -> Handler:
        raise NotImplementedError

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self.wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


class StatusInterceptor(_Wrapping):
    """Report the core's exceptions as status codes with their message."""

    def wrap(self, method: str, handler: Handler) -> Handler:
        def unary(behavior: Any) -> Any:
            async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                try:
                    return await behavior(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await _abort(context, exc)

            return call

        def stream(behavior: Any) -> Any:
            async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                try:
                    async for item in behavior(request, context):
                        yield item
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await _abort(context, exc)

            return call

        return _rewrap(handler, unary, stream)


def _code(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The status a failed call ended with (set by ``abort``)."""
    code: Any = context.code()  # a StatusCode, or its int value, depending on the path
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        for status in grpc.StatusCode:
            if status.value[0] == code:
                return status.name
    return "UNKNOWN"


class MetricsInterceptor(_Wrapping):
    """Count every call and time it, by method, namespace and status code."""

    def __init__(self, metrics: RpcMetrics) -> None:
        super().__init__()
        self.metrics = metrics

    def wrap(self, method: str, handler: Handler) -> Handler:
        name = method.rpartition("/")[2]
        record = self.metrics.record
        clock = time.perf_counter

        def unary(behavior: Any) -> Any:
            async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                start, code = clock(), "OK"
                try:
                    return await behavior(request, context)
                except asyncio.CancelledError:
                    code = "CANCELLED"
                    raise
                except BaseException:
                    code = _code(context)
                    raise
                finally:
                    record(name, getattr(request, "namespace", ""), code, clock() - start)

            return call

        def stream(behavior: Any) -> Any:
            async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                start, code = clock(), "OK"
                try:
                    result = behavior(request, context)
                    if inspect.isawaitable(result):  # a coroutine handler (auth's rejection)
                        await result
                    else:
                        async for item in result:
                            yield item
                except (asyncio.CancelledError, GeneratorExit):
                    code = "CANCELLED"
                    raise
                except BaseException:
                    code = _code(context)
                    raise
                finally:
                    record(name, getattr(request, "namespace", ""), code, clock() - start)

            return call

        return _rewrap(handler, unary, stream)


def _bearer(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
    return None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Require ``authorization: Bearer TOKEN``; admin methods need the admin token if set.

    The admin token also opens the data-plane methods. Health checks need no token.
    """

    def __init__(self, token: str | None, admin_token: str | None = None) -> None:
        if token is not None and not token:
            raise ConfigurationError("token must not be empty", key="token")
        if admin_token is not None and not admin_token:
            raise ConfigurationError("admin_token must not be empty", key="admin_token")
        self._token = token.encode() if token else None
        self._admin = admin_token.encode() if admin_token else None
        self._rejections: dict[tuple[str, str], Handler] = {}

    def _allowed(self, method: str, presented: str | None) -> tuple[bool, str]:
        admin = method.startswith(ADMIN_PREFIX) or method in ADMIN_METHODS
        given = presented.encode() if presented is not None else None

        def match(expected: bytes | None) -> bool:
            return (
                expected is not None and given is not None and hmac.compare_digest(given, expected)
            )

        if admin and self._admin is not None:
            return match(self._admin), "this method needs the admin token"
        if self._token is None and (self._admin is None or admin):
            return True, ""
        return match(self._token) or match(self._admin), "missing or wrong bearer token"

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        method: str = handler_call_details.method
        if method.startswith(OPEN_PREFIX):
            return await continuation(handler_call_details)
        metadata = handler_call_details.invocation_metadata
        allowed, reason = self._allowed(method, _bearer(metadata))
        handler = await continuation(handler_call_details)
        if allowed or handler is None:
            return handler
        return self._reject(method, handler, reason)

    def _reject(self, method: str, handler: Handler, reason: str) -> Handler:
        cached = self._rejections.get((method, reason))
        if cached is not None:
            return cached

        async def deny(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)

        # A coroutine serves every kind of method in grpc.aio (streams write with context.write).
        kinds = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }
        make = kinds[(bool(handler.request_streaming), bool(handler.response_streaming))]
        rejected = make(
            deny,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._rejections[(method, reason)] = rejected
        return rejected
