"""Interceptors, each doing one thing: metrics, bearer-token auth, errors to statuses.

Each wraps a method's handler once, when the server is built (:meth:`MethodInterceptor.wrap`);
a call then runs only the wrappers its method needs, and an interceptor with nothing to do for a
method (auth without tokens, health checks) returns the handler unchanged, costing nothing.

They are not ``grpc.aio.ServerInterceptor`` objects on purpose. grpc.aio runs every server
interceptor's ``intercept_service`` coroutine for every call, before the handler lookup (a
``functools.partial`` and two coroutines each), and cannot skip one for a method; with three
of them that was about 5% of the server's CPU per ``Get``, where these wrappers cost the
``try`` blocks they need. The structure is the same: one class per concern, ordered once.

Order (outermost first): :class:`MetricsInterceptor` sees every call, rejected ones included;
:class:`AuthInterceptor` rejects before a servicer runs; :class:`StatusInterceptor` turns the
core's exceptions into status codes with a message, so no exception escapes unhandled and no
connection is dropped.
"""

from __future__ import annotations

import abc
import asyncio
import hmac
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import grpc
import grpc.aio

from .. import errors
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
from .namespaces import Namespace, NamespaceExists, NamespaceNotFound, Namespaces
from .namespaces import UnsupportedPolicy as _UnsupportedPolicy

__all__ = [
    "ADMIN_METHODS",
    "ERROR_KEY",
    "AuthInterceptor",
    "CallTracker",
    "MethodInterceptor",
    "MetricsInterceptor",
    "StatusInterceptor",
    "status_of",
    "wrap_handler",
]

log = logging.getLogger("cachekit.grpc")

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # generic in the stubs only
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

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


async def _abort(context: Context, exc: Exception) -> None:
    code, message = status_of(exc)
    kind = public_error_name(exc) if isinstance(exc, CacheError) else ""
    await context.abort(code, message, trailing_metadata=((ERROR_KEY, kind),) if kind else ())


def public_error_name(exc: BaseException) -> str:
    """The first class of ``exc`` that ``cachekit.errors`` exports: a provider's subclass
    (``RedisNotAnInteger``) travels as the public error its clients know (``NotAnInteger``)."""
    for cls in type(exc).__mro__:
        name: str = cls.__name__
        if name in errors.__all__ and getattr(errors, name) is cls:
            return name
    return ""


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


# A handler's behaviour is one of four attributes, and is rebuilt with the matching factory.
_KINDS: dict[tuple[bool, bool], tuple[str, Callable[..., Handler]]] = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def _rewrap(handler: Handler, unary: Any, stream: Any) -> Handler:
    """``handler`` with its behaviour wrapped: by ``unary`` (one response) or ``stream``."""
    attr, make = _KINDS[(bool(handler.request_streaming), bool(handler.response_streaming))]
    wrap = stream if handler.response_streaming else unary
    return make(
        wrap(getattr(handler, attr)),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class MethodInterceptor(abc.ABC):
    """Wraps the handler of one method, once; returns ``handler`` when it has nothing to do."""

    @abc.abstractmethod
    def wrap(self, method: str, handler: Handler) -> Handler: ...


def wrap_handler(
    method: str, handler: Handler, interceptors: Sequence[MethodInterceptor]
) -> Handler:
    """``handler`` wrapped by every interceptor, the first one outermost."""
    for interceptor in reversed(interceptors):
        handler = interceptor.wrap(method, handler)
    return handler


class StatusInterceptor(MethodInterceptor):
    """Report the core's exceptions as status codes with their message."""

    def wrap(self, method: str, handler: Handler) -> Handler:
        if handler.request_streaming:
            return handler  # reflection's bidirectional stream: left as it is

        def unary(behavior: Any) -> Any:
            async def call(request: Any, context: Context) -> Any:
                try:
                    return await behavior(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await _abort(context, exc)

            return call

        def stream(behavior: Any) -> Any:
            async def call(request: Any, context: Context) -> Any:
                try:
                    async for item in behavior(request, context):
                        yield item
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await _abort(context, exc)

            return call

        return _rewrap(handler, unary, stream)


class CallTracker(MethodInterceptor):
    """Count the running calls that answer once (not the streams: ``Watch``, health ``Watch``
    and reflection never finish on their own), so shutdown knows when only those are left;
    with ``namespaces``, also count them on each namespace they name, so deleting one waits
    for them before closing its cache."""

    def __init__(self, namespaces: Namespaces | None = None) -> None:
        self.running = 0
        self.namespaces = namespaces

    def _held(self, request: Any) -> list[Namespace]:
        """The namespaces ``request`` works on (Flush: those named, or all), each entered."""
        assert self.namespaces is not None
        name = getattr(request, "namespace", None)
        if isinstance(name, str):
            found = self.namespaces.find(name)
            held = [] if found is None else [found]
        else:
            names = getattr(request, "namespaces", None)
            if names is None:
                return []
            held = [ns for n in names for ns in (self.namespaces.find(n),) if ns is not None]
            if not names:
                held = list(self.namespaces)
        for ns in held:
            ns.enter()
        return held

    def wrap(self, method: str, handler: Handler) -> Handler:
        if handler.request_streaming or handler.response_streaming:
            return handler
        # Creating one does not run on it; deleting one waits for the others, not for itself.
        per_namespace = self.namespaces is not None and method not in {
            f"{ADMIN_PREFIX}CreateNamespace",
            f"{ADMIN_PREFIX}DeleteNamespace",
        }

        def unary(behavior: Any) -> Any:
            async def call(request: Any, context: Context) -> Any:
                self.running += 1
                held = self._held(request) if per_namespace else ()
                try:
                    return await behavior(request, context)
                except asyncio.CancelledError:
                    # Cancelled by the delete of a namespace it runs on (past its wait): a
                    # status that says so, not CANCELLED (the client did not cancel).
                    abandoned = next((ns.abandoned for ns in held if ns.abandoned), None)
                    task = asyncio.current_task()
                    if abandoned is None or task is None:
                        raise
                    task.uncancel()
                    await _abort(context, abandoned)
                    raise  # unreachable: abort raises
                finally:
                    self.running -= 1
                    for ns in held:
                        ns.leave()

            return call

        return _rewrap(handler, unary, None)


def _code(context: Context) -> str:
    """The status a failed call ended with (set by ``abort``)."""
    code: Any = context.code()  # a StatusCode, or its int value, depending on the path
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        for status in grpc.StatusCode:
            if status.value[0] == code:
                return status.name
    return "UNKNOWN"


#: The namespace label of calls naming no namespace this server has: clients choose the
#: name, and one series per name they send would let any of them grow the metrics unbounded.
UNKNOWN_NAMESPACE = "(unknown)"


class MetricsInterceptor(MethodInterceptor):
    """Count every call and time it, by method, namespace and status code.

    The namespace label is the request's only if ``known`` (the server's namespaces) holds it
    when the call ends, and holds the same namespace the call started on if there was one,
    else :data:`UNKNOWN_NAMESPACE` (calls without a namespace keep ``""``): a call that creates
    a namespace is labelled with it, one that deletes it is not, and a call still running on a
    deleted namespace is not counted for one re-created under its name.
    """

    def __init__(self, metrics: RpcMetrics, known: Namespaces | None = None) -> None:
        self.metrics = metrics
        self.known = known

    def wrap(self, method: str, handler: Handler) -> Handler:
        if handler.request_streaming:
            return handler  # reflection: not a cache call
        recorder = self.metrics.recorder(method.rpartition("/")[2])
        clock = time.perf_counter
        known = self.known

        def served_by(namespace: str) -> object:
            return known.lookup(namespace) if known is not None and namespace else None

        def record(namespace: str, served: object, code: str, seconds: float) -> None:
            if namespace and known is not None:
                now = known.lookup(namespace)
                if now is None or (served is not None and now is not served):
                    namespace = UNKNOWN_NAMESPACE
            recorder(namespace, code, seconds)

        def unary(behavior: Any) -> Any:
            async def call(request: Any, context: Context) -> Any:
                name = getattr(request, "namespace", "")
                served, start, code = served_by(name), clock(), "OK"
                try:
                    return await behavior(request, context)
                except asyncio.CancelledError:
                    code = "CANCELLED"
                    raise
                except BaseException:
                    code = _code(context)
                    raise
                finally:
                    record(name, served, code, clock() - start)

            return call

        def stream(behavior: Any) -> Any:
            async def call(request: Any, context: Context) -> Any:
                name = getattr(request, "namespace", "")
                served, start, code = served_by(name), clock(), "OK"
                try:
                    async for item in behavior(request, context):
                        yield item
                except (asyncio.CancelledError, GeneratorExit):
                    code = "CANCELLED"
                    raise
                except BaseException:
                    code = _code(context)
                    raise
                finally:
                    record(name, served, code, clock() - start)

            return call

        return _rewrap(handler, unary, stream)


def _bearer(metadata: Any) -> bytes | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip().encode()
    return None


def _matches(given: bytes | None, tokens: tuple[bytes, ...]) -> bool:
    """Whether ``given`` is one of ``tokens``, in time that does not depend on which."""
    if given is None:
        return False
    found = False
    for token in tokens:  # every one compared: timing tells nothing about a near match
        found |= hmac.compare_digest(given, token)
    return found


class AuthInterceptor(MethodInterceptor):
    """Require ``authorization: Bearer TOKEN``; admin methods need the admin token if set.

    The admin token also opens the data-plane methods. Health checks need no token. Which
    tokens a method accepts is decided once per method; without tokens nothing is wrapped.
    """

    def __init__(self, token: str | None, admin_token: str | None = None) -> None:
        if token is not None and not token:
            raise ConfigurationError("token must not be empty", key="token")
        if admin_token is not None and not admin_token:
            raise ConfigurationError("admin_token must not be empty", key="admin_token")
        for key, value in (("token", token), ("admin_token", admin_token)):
            if value is not None and value != value.strip():
                # The header's token is stripped before comparing: this one could never match.
                raise ConfigurationError(f"{key} must not start or end with whitespace", key=key)
        self._token = token.encode() if token else None
        self._admin = admin_token.encode() if admin_token else None

    def accepted(self, method: str) -> tuple[tuple[bytes, ...], str] | None:
        """The tokens that open ``method`` and the reason given without one; None: open."""
        if method.startswith(OPEN_PREFIX):
            return None
        admin = method.startswith(ADMIN_PREFIX) or method in ADMIN_METHODS
        if admin and self._admin is not None:
            return (self._admin,), "this method needs the admin token"
        if self._token is None:
            return None  # no token, and no admin token that this method needs
        tokens = (self._token,) if self._admin is None else (self._token, self._admin)
        return tokens, "missing or wrong bearer token"

    def wrap(self, method: str, handler: Handler) -> Handler:
        rule = self.accepted(method)
        if rule is None:
            return handler
        tokens, reason = rule
        unauthenticated = grpc.StatusCode.UNAUTHENTICATED

        def allowed(context: Context) -> bool:
            return _matches(_bearer(context.invocation_metadata()), tokens)

        def unary(behavior: Any) -> Any:
            async def call(request: Any, context: Context) -> Any:
                if not allowed(context):
                    await context.abort(unauthenticated, reason)
                return await behavior(request, context)

            return call

        def stream(behavior: Any) -> Any:
            async def call(request: Any, context: Context) -> Any:
                if not allowed(context):
                    await context.abort(unauthenticated, reason)
                async for item in behavior(request, context):
                    yield item

            return call

        return _rewrap(handler, unary, stream)
