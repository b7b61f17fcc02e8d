"""``GrpcCache``: the cache contract over a cachekit gRPC server (``grpc://``, ``grpcs://``).

``grpc://HOST:PORT/NAMESPACE?token=...`` (``grpcs://`` for TLS, with ``ssl_ca_certs`` and, for
mutual TLS, ``ssl_certfile``/``ssl_keyfile``; ``max_message_bytes``, 4 MiB by default as on the
server, caps what the channels send and receive: raise it with the server's). Values are encoded
by a cachekit serializer (pickle by default; ``serializer=json`` for values other languages
read as JSON) and sent as ``application/vnd.cachekit``; the server answers with the plainest
content type that describes them (:mod:`.values`). Server errors come back as the same
cachekit exception (the server names it in the ``cachekit-error`` trailer), or else by status code.

Sync calls use a ``grpc`` channel, the async twins a ``grpc.aio`` channel of the running event
loop; both are opened on first use, so constructing a cache never connects.

It is a :class:`~cachekit.DistributedCache`: tags travel in ``Set``/``SetMultiple``, and
``invalidate_tags``/``delete_pattern`` are the ``InvalidateTags``/``DeletePattern`` RPCs. They
need a namespace whose provider on the server has them (memory, Redis, tiered); on another one
(memcached) they raise :class:`~cachekit.errors.UnsupportedOperation`, as that provider would.
A server older than these RPCs answers ``UNIMPLEMENTED``, raised as ``UnsupportedOperation``
too (it ignores the unknown ``tags`` field of a write, so the failure shows at invalidation).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import grpc
import grpc.aio

from .. import errors
from ..config import (
    Option,
    ParsedURL,
    parse_options,
    redact_url,
    seconds_option,
    size_option,
)
from ..entry import EntryInfo, describe_payload
from ..errors import (
    BackendUnavailable,
    CacheError,
    ConfigurationError,
    UnsupportedOperation,
    ValueTooLarge,
)
from ..interfaces import DistributedCache, check_key, check_tags
from ..keyscan import check_scan_args
from ..sentinels import DEFAULT
from ..serialization import Serializer, make_serializer
from ..serialization.signing import secret_option
from ..stats import CacheStats
from ..ttl import TTLArg, check_default_ttl, resolve_ttl
from ..v1 import cache_pb2 as pb
from ..v1 import cache_pb2_grpc as pb_grpc
from . import values
from .convert import duration, seconds, stats_from_message
from .interceptors import ERROR_KEY

__all__ = ["GrpcCache", "Unauthenticated"]


class Unauthenticated(CacheError):
    """The server refused the token (``UNAUTHENTICATED``)."""


#: The largest message sent or received by default: the server's default ``max_message_bytes``
#: (``cachekit.grpc.server.DEFAULT_MAX_MESSAGE_BYTES``; not imported, to keep the client light).
DEFAULT_MAX_MESSAGE_BYTES = 4 << 20
_MIN64, _MAX64 = -(1 << 63), (1 << 63) - 1
#: gRPC's channel limits are C ints.
_MAX_CHANNEL_BYTES = (1 << 31) - 1


def _message_bytes(value: Any) -> int:
    number: int = size_option().parse(value)
    if number > _MAX_CHANNEL_BYTES:
        raise ValueError(f"must be <= {_MAX_CHANNEL_BYTES}")
    return number


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("a string")
    return value


_OPTIONS: dict[str, Option] = {
    "name": Option(_str, "a name for stats"),
    "token": Option(_str, "the server's bearer token"),
    "timeout": seconds_option(allow_none=True),
    "default_ttl": seconds_option(),
    "serializer": Option(_str, "json, pickle, msgpack or protobuf"),
    "compression": Option(_str, "auto, zlib, zstd or none"),
    "compress_threshold": Option(int, "an int >= 0"),
    "secret": Option(secret_option, "a signing secret (str or bytes) of at least 16 bytes"),
    "max_message_bytes": Option(
        _message_bytes, "a byte size such as 16777216 or '16MiB' (the server's max_message_bytes)"
    ),
    "ssl_ca_certs": Option(_str, "a PEM file of the CA that signed the server's certificate"),
    "ssl_certfile": Option(_str, "a PEM client certificate (mutual TLS)"),
    "ssl_keyfile": Option(_str, "the PEM key of ssl_certfile"),
}

_ERRORS: dict[str, type[CacheError]] = {
    name: cls
    for name in errors.__all__
    if isinstance(cls := getattr(errors, name), type) and issubclass(cls, CacheError)
}
_BY_CODE: dict[grpc.StatusCode, type[CacheError]] = {
    grpc.StatusCode.UNAVAILABLE: BackendUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: BackendUnavailable,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.INVALID_ARGUMENT: ConfigurationError,
    grpc.StatusCode.NOT_FOUND: ConfigurationError,
    grpc.StatusCode.UNIMPLEMENTED: UnsupportedOperation,  # a server without the RPC
    # A message over the client's or the server's max_message_bytes (gRPC's own status, no
    # trailer): what other providers raise for a value too big to store or read.
    grpc.StatusCode.RESOURCE_EXHAUSTED: ValueTooLarge,
}


def translate(exc: grpc.RpcError, name: str) -> CacheError:
    """The cachekit exception for a failed call."""
    call: Any = exc  # grpc's errors are also grpc.Call objects, which the stubs do not say
    code: grpc.StatusCode = call.code()
    details: str = call.details() or code.name
    kind = ""
    for key, value in call.trailing_metadata() or ():
        if key == ERROR_KEY:
            kind = str(value)
    cls = _ERRORS.get(kind, CacheError)
    if cls is CacheError:  # no trailer, or one naming only the root (NamespaceNotFound's)
        cls = _BY_CODE.get(code, CacheError)
    message = f"grpc cache {name!r}: {code.name}: {details}"
    if cls is ConfigurationError:
        return ConfigurationError(message, key="namespace" if code.name == "NOT_FOUND" else None)
    return cls(message)


def _split(pending: list[list[str]], asked: list[str], exc: ValueTooLarge) -> None:
    """Ask for ``asked`` in two halves (first half next), after a response too large to send:
    one entry beside a long list of unread keys, or past this client's max_message_bytes. A
    single key cannot be split: the error stands."""
    if len(asked) < 2:
        raise exc
    half = len(asked) // 2
    pending += [asked[half:], asked[:half]]


class GrpcCache(DistributedCache):
    """A namespace of a cachekit gRPC server, behind the cache contract."""

    provider_name = "grpc"
    options: ClassVar[dict[str, Option]] = _OPTIONS

    def __init__(self, url: str | ParsedURL = "grpc://127.0.0.1:50051/default", **options: Any):
        from ..config import parse_url

        parsed = parse_url(url) if isinstance(url, str) else url
        if parsed.scheme not in {"grpc", "grpcs"} or len(parsed.hosts) != 1:
            raise ConfigurationError(
                "a gRPC cache URL looks like grpc://HOST:PORT/NAMESPACE, "
                f"got {redact_url(parsed.raw)!r}",
                key="url",
            )
        opts = parse_options(f"{parsed.scheme}://", {**parsed.options, **options}, _OPTIONS)
        namespace = parsed.path.strip("/") or "default"
        super().__init__(name=opts.pop("name", namespace))
        host, port = parsed.hosts[0]
        self.namespace = namespace
        host = f"[{host}]" if ":" in host else host  # IPv6: grpc cannot resolve ::1:50051
        self.target = f"{host}:{port or 50051}"
        self.tls = parsed.scheme == "grpcs"
        self.timeout: float | None = opts.pop("timeout", 5.0)
        self.default_ttl = check_default_ttl(opts.pop("default_ttl", None))
        #: The largest message sent or received; set it to the server's ``max_message_bytes``.
        self.max_message_bytes: int = opts.pop("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES)
        self._channel_options: tuple[tuple[str, int], ...] = (
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
        )
        token = opts.pop("token", None) or parsed.password
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        codec = {
            k: opts.pop(k) for k in ("compression", "compress_threshold", "secret") if k in opts
        }
        self.serializer: Serializer = make_serializer(opts.pop("serializer", "pickle"), **codec)
        self._credentials = self._tls_credentials(opts) if self.tls else None
        if opts:
            key = next(iter(opts))
            raise ConfigurationError(f"{key} applies to grpcs:// URLs only", key=key)
        self._lock = threading.Lock()
        self._stub: pb_grpc.CacheServiceStub | None = None
        self._channel: grpc.Channel | None = None
        self._aio: tuple[asyncio.AbstractEventLoop, grpc.aio.Channel, Any] | None = None

    @classmethod
    def from_url(cls, url: ParsedURL, options: Mapping[str, Any]) -> GrpcCache:
        return cls(url, **options)

    @staticmethod
    def _tls_credentials(opts: dict[str, Any]) -> grpc.ChannelCredentials:
        def read(option: str) -> bytes | None:
            path = opts.pop(option, None)
            if path is None:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise ConfigurationError(f"{option}: {exc}", key=option) from None

        ca, cert, key = read("ssl_ca_certs"), read("ssl_certfile"), read("ssl_keyfile")
        if (cert is None) != (key is None):
            raise ConfigurationError(
                "mutual TLS needs ssl_certfile and ssl_keyfile",
                key="ssl_keyfile" if key is None else "ssl_certfile",
            )
        return grpc.ssl_channel_credentials(ca, key, cert)

    def __repr__(self) -> str:
        scheme = "grpcs" if self.tls else "grpc"
        return f"<GrpcCache {scheme}://{self.target}/{self.namespace}>"

    # -- plumbing ---------------------------------------------------------------------------

    def _sync(self) -> pb_grpc.CacheServiceStub:
        stub = self._stub
        if stub is None:
            with self._lock:
                if self._stub is None:
                    options = self._channel_options
                    channel = (
                        grpc.secure_channel(self.target, self._credentials, options)
                        if self._credentials is not None
                        else grpc.insecure_channel(self.target, options)
                    )
                    self._channel, self._stub = channel, pb_grpc.CacheServiceStub(channel)
                stub = self._stub
        assert stub is not None
        return stub

    def _async(self) -> Any:
        loop = asyncio.get_running_loop()
        current = self._aio
        if current is None or current[0] is not loop:
            options = self._channel_options
            channel = (
                grpc.aio.secure_channel(self.target, self._credentials, options)
                if self._credentials is not None
                else grpc.aio.insecure_channel(self.target, options)
            )
            current = self._aio = (loop, channel, pb_grpc.CacheServiceStub(channel))
        return current[2]

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self._sync(), method)(
                request, timeout=self.timeout, metadata=self._metadata
            )
        except grpc.RpcError as exc:
            raise translate(exc, self.name) from None

    async def _acall(self, method: str, request: Any) -> Any:
        try:
            return await getattr(self._async(), method)(
                request, timeout=self.timeout, metadata=self._metadata
            )
        except grpc.RpcError as exc:
            raise translate(exc, self.name) from None

    def _value(self, value: Any) -> pb.Value:
        return pb.Value(data=self.serializer.dumps(value), content_type=values.CACHEKIT)

    def _decode(self, value: pb.Value) -> Any:
        return self.serializer.loads(values.envelope(value.content_type, value.data))

    def _ttl_fields(self, ttl: TTLArg) -> dict[str, Any]:
        seconds_ = resolve_ttl(ttl, self.default_ttl)
        if ttl is DEFAULT and seconds_ is None:
            return {}  # the namespace's default
        if seconds_ is None:
            return {"no_expiry": True}
        return {"ttl": duration(max(seconds_, 0.0))}

    # -- requests, shared by the sync and async paths ------------------------------------------

    def _get(self, key: str) -> pb.GetRequest:
        return pb.GetRequest(namespace=self.namespace, key=check_key(key))

    def _inspect(self, key: str) -> pb.GetRequest:
        return pb.GetRequest(namespace=self.namespace, key=check_key(key), inspect=True)

    def _info(self, response: pb.GetResponse) -> EntryInfo | None:
        if not response.found:
            return None
        entry = response.entry
        raw = values.envelope(entry.value.content_type, entry.value.data)
        serializer, compression = describe_payload(raw)
        return EntryInfo(
            entry.key,
            self._remaining(response),
            entry.size if entry.HasField("size") else None,
            serializer,
            compression,
            type(self.serializer.loads(raw)).__name__,
        )

    def _fields(self, ttl: TTLArg, tags: Iterable[str]) -> dict[str, Any]:
        """A write's TTL fields, and its tags (checked as the core does: a bare str is a
        TypeError) when it has some; an empty ``tags=[]`` would cost the constructor time."""
        fields = self._ttl_fields(ttl)
        tagset = check_tags(tags)
        if tagset:
            fields["tags"] = sorted(tagset)
        return fields

    def _set(
        self, key: str, value: Any, ttl: TTLArg, nx: bool, tags: Iterable[str], *, xx: bool = False
    ) -> pb.SetRequest:
        key = check_key(key)
        fields = self._fields(ttl, tags)
        return pb.SetRequest(
            namespace=self.namespace,
            key=key,
            value=self._value(value),
            only_if_absent=nx,
            only_if_present=xx,
            **fields,
        )

    def _touch(self, key: str, ttl: TTLArg) -> pb.TouchExpirationRequest:
        key = check_key(key)
        return pb.TouchExpirationRequest(namespace=self.namespace, key=key, **self._ttl_fields(ttl))

    def _incr(self, key: str, delta: int) -> pb.IncrementRequest:
        if type(delta) is not int:
            raise errors.NotAnInteger(f"delta must be an int, got {delta!r}")
        if not _MIN64 <= delta <= _MAX64:  # the field is an int64; Redis refuses it the same way
            raise errors.NotAnInteger(f"delta must fit in a 64-bit signed int, got {delta!r}")
        return pb.IncrementRequest(namespace=self.namespace, key=check_key(key), delta=delta)

    def _set_many(
        self, mapping: Mapping[str, Any], ttl: TTLArg, tags: Iterable[str]
    ) -> pb.SetMultipleRequest:
        values_ = {check_key(k): self._value(v) for k, v in mapping.items()}
        return pb.SetMultipleRequest(
            namespace=self.namespace, values=values_, **self._fields(ttl, tags)
        )

    def _pattern(self, pattern: str) -> pb.DeletePatternRequest:
        if not isinstance(pattern, str) or not pattern:
            raise errors.InvalidKey(f"pattern must be a non-empty str, got {pattern!r}")
        return pb.DeletePatternRequest(namespace=self.namespace, pattern=pattern)

    def _invalidate(self, tags: Iterable[str]) -> pb.InvalidateTagsRequest:
        return pb.InvalidateTagsRequest(
            namespace=self.namespace, tags=sorted(check_tags(tags) or ())
        )

    def _found(self, response: pb.GetResponse, default: Any) -> Any:
        return self._decode(response.entry.value) if response.found else default

    def _many(self, response: pb.GetMultipleResponse) -> dict[str, Any]:
        return {e.key: self._decode(e.value) for e in response.entries}

    @staticmethod
    def _remaining(response: pb.GetResponse) -> float | None:
        if not response.found:
            return 0.0
        return seconds(response.entry.ttl) if response.entry.HasField("ttl") else None

    def _stats(self, response: pb.GetStatsResponse) -> CacheStats:
        stats = stats_from_message(response.stats)
        extra = {**stats.extra, "server_provider": stats.provider, "namespace": self.namespace}
        return dataclasses.replace(stats, name=self.name, provider=self.provider_name, extra=extra)

    # -- the contract -----------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        return self._found(self._call("Get", self._get(key)), default)

    def set(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> None:
        self._call("Set", self._set(key, value, ttl, False, tags))

    def add(self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()) -> bool:
        stored: bool = self._call("Set", self._set(key, value, ttl, True, tags)).stored
        return stored

    def replace(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> bool:
        stored: bool = self._call("Set", self._set(key, value, ttl, False, tags, xx=True)).stored
        return stored

    def delete(self, key: str) -> bool:
        request = pb.DeleteRequest(namespace=self.namespace, key=check_key(key))
        deleted: bool = self._call("Delete", request).deleted
        return deleted

    def exists(self, key: str) -> bool:
        request = pb.ExistsRequest(namespace=self.namespace, key=check_key(key))
        found: bool = self._call("Exists", request).exists
        return found

    def touch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        touched: bool = self._call("TouchExpiration", self._touch(key, ttl)).touched
        return touched

    def ttl(self, key: str) -> float | None:
        return self._remaining(self._call("Get", self._inspect(key)))

    def inspect(self, key: str) -> EntryInfo | None:
        return self._info(self._call("Get", self._inspect(key)))

    async def ainspect(self, key: str) -> EntryInfo | None:
        return self._info(await self._acall("Get", self._inspect(key)))

    def incr(self, key: str, delta: int = 1) -> int:
        result: int = self._call("Increment", self._incr(key, delta)).value
        return result

    def clear(self) -> None:
        self._call("Clear", pb.ClearRequest(namespace=self.namespace))

    def delete_pattern(self, pattern: str) -> int:
        """Remove the keys matching a Redis-style glob; return how many."""
        count: int = self._call("DeletePattern", self._pattern(pattern)).count
        return count

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        """Remove every key carrying any of ``tags``; return how many."""
        count: int = self._call("InvalidateTags", self._invalidate(tags)).count
        return count

    def scan_keys(
        self, pattern: str = "*", *, cursor: str = "", count: int = 100
    ) -> tuple[str, list[str]]:
        check_scan_args(pattern, cursor, count)
        request = pb.KeysRequest(
            namespace=self.namespace, pattern=pattern, page_token=cursor, page_size=count
        )
        response = self._call("Keys", request)
        return response.next_page_token, list(response.keys)

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        pending = [[check_key(k) for k in keys]]
        found: dict[str, Any] = {}
        while pending:  # the server leaves unread what would not fit in one response
            asked = pending.pop()
            request = pb.GetMultipleRequest(namespace=self.namespace, keys=asked)
            try:
                response = self._call("GetMultiple", request)
            except ValueTooLarge as exc:
                _split(pending, asked, exc)
                continue
            found.update(self._many(response))
            if response.unread_keys:
                pending.append(list(response.unread_keys))
        return found

    def set_many(
        self, mapping: Mapping[str, Any], ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> list[str]:
        return list(self._call("SetMultiple", self._set_many(mapping, ttl, tags)).failed_keys)

    def delete_many(self, keys: Iterable[str]) -> int:
        request = pb.DeleteMultipleRequest(
            namespace=self.namespace, keys=[check_key(k) for k in keys]
        )
        deleted: int = self._call("DeleteMultiple", request).deleted
        return deleted

    def get_stats(self) -> CacheStats:
        return self._stats(self._call("GetStats", pb.GetStatsRequest(namespace=self.namespace)))

    def _after_fork(self) -> None:
        """gRPC channels cannot be used across a fork: the child opens its own on next use
        (grpcio's own fork support, ``GRPC_ENABLE_FORK_SUPPORT``, covers the C core)."""
        super()._after_fork()
        self._lock = threading.Lock()
        self._channel = self._stub = None
        self._aio = None

    def close(self) -> None:
        with self._lock:
            channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            channel.close()

    # -- async twins ------------------------------------------------------------------------------

    async def aget(self, key: str, default: Any = None) -> Any:
        return self._found(await self._acall("Get", self._get(key)), default)

    async def aset(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> None:
        await self._acall("Set", self._set(key, value, ttl, False, tags))

    async def aadd(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> bool:
        stored: bool = (await self._acall("Set", self._set(key, value, ttl, True, tags))).stored
        return stored

    async def areplace(
        self, key: str, value: Any, ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> bool:
        request = self._set(key, value, ttl, False, tags, xx=True)
        stored: bool = (await self._acall("Set", request)).stored
        return stored

    async def adelete(self, key: str) -> bool:
        request = pb.DeleteRequest(namespace=self.namespace, key=check_key(key))
        deleted: bool = (await self._acall("Delete", request)).deleted
        return deleted

    async def aexists(self, key: str) -> bool:
        request = pb.ExistsRequest(namespace=self.namespace, key=check_key(key))
        found: bool = (await self._acall("Exists", request)).exists
        return found

    async def atouch(self, key: str, ttl: TTLArg = DEFAULT) -> bool:
        touched: bool = (await self._acall("TouchExpiration", self._touch(key, ttl))).touched
        return touched

    async def attl(self, key: str) -> float | None:
        return self._remaining(await self._acall("Get", self._inspect(key)))

    async def aincr(self, key: str, delta: int = 1) -> int:
        result: int = (await self._acall("Increment", self._incr(key, delta))).value
        return result

    async def adecr(self, key: str, delta: int = 1) -> int:
        """``aincr`` by ``-delta`` (the base class's twin made the sync call, blocking the loop)."""
        if type(delta) is not int:
            raise errors.NotAnInteger(f"delta must be an int, got {delta!r}")
        return await self.aincr(key, -delta)

    async def aclear(self) -> None:
        await self._acall("Clear", pb.ClearRequest(namespace=self.namespace))

    async def aget_many(self, keys: Iterable[str]) -> dict[str, Any]:
        pending = [[check_key(k) for k in keys]]
        found: dict[str, Any] = {}
        while pending:  # the server leaves unread what would not fit in one response
            asked = pending.pop()
            request = pb.GetMultipleRequest(namespace=self.namespace, keys=asked)
            try:
                response = await self._acall("GetMultiple", request)
            except ValueTooLarge as exc:
                _split(pending, asked, exc)
                continue
            found.update(self._many(response))
            if response.unread_keys:
                pending.append(list(response.unread_keys))
        return found

    async def aset_many(
        self, mapping: Mapping[str, Any], ttl: TTLArg = DEFAULT, *, tags: Iterable[str] = ()
    ) -> list[str]:
        request = self._set_many(mapping, ttl, tags)
        return list((await self._acall("SetMultiple", request)).failed_keys)

    async def adelete_pattern(self, pattern: str) -> int:
        count: int = (await self._acall("DeletePattern", self._pattern(pattern))).count
        return count

    async def ainvalidate_tags(self, tags: Iterable[str]) -> int:
        count: int = (await self._acall("InvalidateTags", self._invalidate(tags))).count
        return count

    async def adelete_many(self, keys: Iterable[str]) -> int:
        request = pb.DeleteMultipleRequest(
            namespace=self.namespace, keys=[check_key(k) for k in keys]
        )
        deleted: int = (await self._acall("DeleteMultiple", request)).deleted
        return deleted

    async def aget_stats(self) -> CacheStats:
        request = pb.GetStatsRequest(namespace=self.namespace)
        return self._stats(await self._acall("GetStats", request))

    async def aclose(self) -> None:
        current, self._aio = self._aio, None
        if current is not None and current[0] is asyncio.get_running_loop():
            await current[1].close()
        self.close()
