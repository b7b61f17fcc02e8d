"""``CacheService``: converts between ``cachekit.v1`` messages and the core cache contract.

No cache logic lives here. Outcomes are values (``found``, ``stored``); failures are the core's
exceptions, which :mod:`.interceptors` turns into status codes. Every write that goes through
the server is published to the namespace's ``Watch`` subscribers after it succeeded.

Tags and pattern deletes need a :class:`~cachekit.DistributedCache` namespace; on any other
(memcached) they raise the core's ``UnsupportedOperation`` (``FAILED_PRECONDITION``). Tags are
validated by the core's ``check_tags`` first, so bad ones are ``INVALID_ARGUMENT`` everywhere.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import time
from collections.abc import AsyncIterator, Collection
from typing import Any, Final

import grpc

from ..errors import InvalidKey, NotAnInteger, UnsupportedOperation, ValueTooLarge
from ..interfaces import Cache, DistributedCache, check_key, check_tags
from ..providers.memory import MemoryCache
from ..sentinels import DEFAULT, MISSING, DefaultType
from ..v1 import cache_pb2 as pb
from ..v1 import cache_pb2_grpc as pb_grpc
from . import values
from .convert import (
    MAX_DURATION_SECONDS,
    InvalidArgument,
    check_pattern,
    duration,
    in_timestamp_range,
    request_ttl,
    stats_message,
    timestamp,
)
from .events import SERVER_STOPPING, Event, EventKind
from .namespaces import Namespace, Namespaces

__all__ = [
    "DEFAULT_MAX_KEY_BYTES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_VALUE_BYTES",
    "MAX_PAGE_SIZE",
    "CacheServicer",
]

#: Largest value accepted by default (memcached's default item size).
DEFAULT_MAX_VALUE_BYTES = 1 << 20
#: Largest key accepted by default, in UTF-8 bytes.
DEFAULT_MAX_KEY_BYTES = 64 << 10
#: Largest request or response message by default (gRPC's own default).
DEFAULT_MAX_MESSAGE_BYTES = 4 << 20
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
_MAX_KEYS_PER_CALL = 10_000


def _tags(tags: Collection[str]) -> frozenset[str]:
    """A request's tags, checked by the core (empty strings are ``INVALID_ARGUMENT``)."""
    if len(tags) > _MAX_KEYS_PER_CALL:
        raise InvalidArgument(f"at most {_MAX_KEYS_PER_CALL} tags per call, got {len(tags)}")
    return check_tags(tags) or frozenset()


def _distributed(ns: Namespace, what: str) -> DistributedCache:
    """The namespace's cache if it has tags and pattern deletes, else UnsupportedOperation."""
    cache = ns.cache
    if not isinstance(cache, DistributedCache):
        raise UnsupportedOperation(f"namespace {ns.name!r} ({cache.provider_name}) cannot {what}")
    return cache


def _value(stored: Any, sniff: bool, packs: bool) -> pb.Value:
    content_type, data = values.to_wire(stored, sniff, packs)
    return pb.Value(data=data, content_type=content_type)


def _fill(value: pb.Value, stored: Any, sniff: bool, packs: bool) -> None:
    """Write ``stored``'s wire form into ``value``, a field of the response being built.

    Filling a response's fields in place is 3x cheaper than building ``Value`` and ``Entry``
    messages and passing them to the constructors, which copy them.
    """
    value.content_type, value.data = values.to_wire(stored, sniff, packs)


_MIN64, _MAX64 = -(1 << 63), (1 << 63) - 1
#: Redis SCAN cursors are unsigned 64-bit.
_MAX_SCAN_CURSOR = (1 << 64) - 1
#: Bytes of a response kept free under max_message_bytes (rounding, nothing else).
_HEADROOM = 64
#: Keys GetMultiple reads first (value sizes are unknown): later batches are sized by the
#: largest value seen, so that a value read but not sent is one larger than all before it.
_FIRST_BATCH = 1
#: Keys whose existence GetMultiple checks concurrently (network providers).
_EXISTS_BATCH = 64


def _field_size(length: int) -> int:
    """Bytes of a length-delimited field numbered under 16 holding ``length`` bytes."""
    return 1 + max(1, (length.bit_length() + 6) // 7) + length


#: Signs the page tokens of memory namespaces; per server process, like their keys.
_TOKEN_KEY: Final = os.urandom(32)
_TAG_BYTES: Final = 16


def _token_tag(namespace: str, cursor: bytes) -> bytes:
    message = namespace.encode() + b"\0" + cursor
    return hmac.new(_TOKEN_KEY, message, hashlib.sha256).digest()[:_TAG_BYTES]


def _seal_token(namespace: str, cursor: str) -> str:
    """A memory namespace's cursor (the last key of a page) as an opaque, signed token."""
    if not cursor:
        return ""
    raw = cursor.encode("utf-8", "surrogatepass")
    body = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    tag = base64.urlsafe_b64encode(_token_tag(namespace, raw)).rstrip(b"=").decode("ascii")
    return f"{body}.{tag}"


async def _present(cache: Cache, keys: list[str]) -> list[str]:
    """The keys of ``keys`` that exist (``exists``: no value read, no hit counted), in order."""
    if isinstance(cache, MemoryCache):  # no I/O: one after the other
        return [k for k in keys if await cache.aexists(k)]
    present: list[str] = []
    for start in range(0, len(keys), _EXISTS_BATCH):
        batch = keys[start : start + _EXISTS_BATCH]
        found = await asyncio.gather(*(cache.aexists(k) for k in batch))
        present += [k for k, there in zip(batch, found, strict=True) if there]
    return present


def _as_is(namespace: str, cursor: str) -> str:
    return cursor


def _open_token(namespace: str, token: str) -> str:
    """The cursor of a token :func:`_seal_token` made for ``namespace``; else InvalidArgument
    (a token of another server process, another namespace, or made up)."""
    if not token:
        return ""
    body, _, tag = token.rpartition(".")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        given = base64.urlsafe_b64decode(tag + "=" * (-len(tag) % 4))
        if body and hmac.compare_digest(given, _token_tag(namespace, raw)):
            return raw.decode("utf-8", "surrogatepass")
    except (ValueError, UnicodeError):
        pass
    raise InvalidArgument(f"not a page token this namespace handed out: {token[:64]!r}")


def _memory_add(cache: MemoryCache, key: str, delta: int, ttl: float | DefaultType | None) -> int:
    """``incr`` on a memory cache, refused when the result would leave int64.

    Synchronous on purpose: it runs on the server's event loop without awaiting, so no other
    call of this server runs between the check and the write. Code of the serving process that
    shares the cache from another thread could still count in between; the result is checked
    again after the write and an increment that left int64 is undone (additions commute, so
    the value ends as if this one had been refused).
    """
    current = cache._peek(key)
    if current is MISSING:
        if ttl is not DEFAULT and cache.add(key, delta, ttl):
            return delta
    elif type(current) is int and not _MIN64 <= current + delta <= _MAX64:
        raise _out_of_range(key, current, delta)
    value = cache.incr(key, delta)  # NotAnInteger for a value that is not an int
    if not _MIN64 <= value <= _MAX64:
        cache.incr(key, -delta)
        raise _out_of_range(key, value - delta, delta)
    return value


def _out_of_range(key: str, current: int, delta: int) -> NotAnInteger:
    return NotAnInteger(
        f"{key!r} is {current}: adding {delta} leaves the 64-bit range (nothing was changed)"
    )


# Immutable answers, shared: never modified after this point.
_NOT_FOUND = pb.GetResponse(found=False)
_STORED = pb.SetResponse(stored=True)
_NOT_STORED = pb.SetResponse(stored=False)


class CacheServicer(pb_grpc.CacheServiceServicer):
    """The data-plane RPCs; ``namespaces`` is shared with the admin service."""

    def __init__(
        self,
        namespaces: Namespaces,
        *,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.namespaces = namespaces
        self.max_value_bytes = max_value_bytes
        self.max_key_bytes = max_key_bytes
        self.max_message_bytes = max_message_bytes

    def _key(self, key: str) -> str:
        """A request's key: the core's rules, and at most ``max_key_bytes`` in UTF-8."""
        key = check_key(key)
        # A str holds at most 4 UTF-8 bytes per character: most keys need no encoding.
        if len(key) * 4 > self.max_key_bytes and len(key.encode()) > self.max_key_bytes:
            raise InvalidKey(
                f"key of {len(key.encode())} bytes is over this server's limit of "
                f"{self.max_key_bytes} bytes"
            )
        return key

    def _stored(self, value: pb.Value, ns: Namespace) -> Any:
        data = value.data  # each read of a bytes field copies it: once
        if len(data) > self.max_value_bytes:
            raise ValueTooLarge(
                f"value of {len(data)} bytes is over this server's limit of "
                f"{self.max_value_bytes} bytes"
            )
        return values.to_stored(value.content_type, data, self.max_value_bytes, ns.marks)

    def _keys(self, keys: Any) -> list[str]:
        if len(keys) > _MAX_KEYS_PER_CALL:
            raise InvalidArgument(f"at most {_MAX_KEYS_PER_CALL} keys per call, got {len(keys)}")
        return [self._key(k) for k in keys]

    # -- single keys -------------------------------------------------------------------------

    async def Get(self, request: pb.GetRequest, context: Any) -> pb.GetResponse:
        ns = self.namespaces.get(request.namespace)
        key = self._key(request.key)
        if request.inspect:
            entry = pb.Entry(key=key)
            if not await self._metadata(ns.cache, entry):
                return _NOT_FOUND
            stored = await ns.cache._apeek(key)  # the core's uncounted read
            if stored is MISSING:  # removed in between
                return _NOT_FOUND
            entry.value.CopyFrom(_value(stored, not ns.marks, ns.packs))
            return pb.GetResponse(found=True, entry=entry)
        stored = await ns.cache.aget(key, MISSING)
        if stored is MISSING:
            return _NOT_FOUND
        response = pb.GetResponse(found=True)
        response.entry.key = key
        _fill(response.entry.value, stored, not ns.marks, ns.packs)
        if request.include_metadata:
            await self._metadata(ns.cache, response.entry)
        return response

    @staticmethod
    async def _metadata(cache: Cache, entry: pb.Entry) -> bool:
        info = await cache.ainspect(entry.key)
        if info is None:
            return False
        if info.ttl is not None and info.ttl <= MAX_DURATION_SECONDS:
            entry.ttl.CopyFrom(duration(info.ttl))
            expires_at = time.time() + info.ttl
            if in_timestamp_range(expires_at):  # past 9999-12-31: unset, as JSON requires
                entry.expires_at.CopyFrom(timestamp(expires_at))
        if info.size is not None:
            entry.size = info.size
        return True

    async def Set(self, request: pb.SetRequest, context: Any) -> pb.SetResponse:
        ns = self.namespaces.get(request.namespace)
        key = self._key(request.key)
        stored = self._stored(request.value, ns)
        ttl = ns.effective_ttl(request_ttl(request))
        if request.only_if_absent and request.only_if_present:
            raise InvalidArgument("only_if_absent and only_if_present are mutually exclusive")
        if request.tags:
            return await self._set_tagged(ns, key, stored, ttl, request)
        if request.only_if_present:
            replaced = await ns.cache.areplace(key, stored, ttl)
            if replaced:
                ns.hub.publish(EventKind.SET, key)
            return _STORED if replaced else _NOT_STORED
        if request.only_if_absent:
            added = await ns.cache.aadd(key, stored, ttl)
            if added:
                ns.hub.publish(EventKind.SET, key)
            return _STORED if added else _NOT_STORED
        await ns.cache.aset(key, stored, ttl)
        ns.hub.publish(EventKind.SET, key)
        return _STORED

    @staticmethod
    async def _set_tagged(
        ns: Namespace,
        key: str,
        stored: Any,
        ttl: float | DefaultType | None,
        request: pb.SetRequest,
    ) -> pb.SetResponse:
        tags = _tags(request.tags)
        cache = _distributed(ns, "tag entries")
        if request.only_if_absent:
            if not await cache.aadd(key, stored, ttl, tags=tags):
                return _NOT_STORED
        elif request.only_if_present:
            if not await cache.areplace(key, stored, ttl, tags=tags):
                return _NOT_STORED
        else:
            await cache.aset(key, stored, ttl, tags=tags)
        ns.hub.publish(EventKind.SET, key)
        return _STORED

    async def Delete(self, request: pb.DeleteRequest, context: Any) -> pb.DeleteResponse:
        ns = self.namespaces.get(request.namespace)
        key = self._key(request.key)
        deleted = await ns.cache.adelete(key)
        if deleted:
            ns.hub.publish(EventKind.DELETE, key)
        return pb.DeleteResponse(deleted=deleted)

    async def Exists(self, request: pb.ExistsRequest, context: Any) -> pb.ExistsResponse:
        ns = self.namespaces.get(request.namespace)
        return pb.ExistsResponse(exists=await ns.cache.aexists(self._key(request.key)))

    async def TouchExpiration(
        self, request: pb.TouchExpirationRequest, context: Any
    ) -> pb.TouchExpirationResponse:
        ns = self.namespaces.get(request.namespace)
        key = self._key(request.key)
        ttl = ns.effective_ttl(request_ttl(request))
        touched = await ns.cache.atouch(key, ttl)
        if touched:
            gone = ttl is not DEFAULT and ttl is not None and ttl <= 0
            ns.hub.publish(EventKind.DELETE if gone else EventKind.TOUCH, key)
        return pb.TouchExpirationResponse(touched=touched)

    # -- counters -------------------------------------------------------------------------------

    async def _add(self, ns: Namespace, key: str, delta: int) -> int:
        """``incr`` that keeps the value an int64 (the response's type) and a created counter
        within the namespace's TTL limits; a result outside int64 is refused, nothing changed.
        """
        if not _MIN64 <= delta <= _MAX64:  # Decrement by -2**63: Redis's DECRBY refuses it too
            raise InvalidArgument(f"the negated delta {delta} is not a 64-bit integer")
        cache = ns.cache
        ttl = ns.effective_ttl(DEFAULT)
        if isinstance(cache, MemoryCache):
            value = _memory_add(cache, key, delta, ttl)
        else:
            # A created counter takes the namespace's TTL: add first (atomic), else count on.
            # The provider refuses a result outside its range (Redis: NotAnInteger).
            if ttl is not DEFAULT and await cache.aadd(key, delta, ttl):
                value = delta
            else:
                value = await cache.aincr(key, delta)
            if not _MIN64 <= value <= _MAX64:  # a provider whose counters are wider (memcached)
                await cache.aincr(key, -delta)  # undone: additions commute
                raise _out_of_range(key, value - delta, delta)
        ns.hub.publish(EventKind.SET, key)
        return value

    async def Increment(self, request: pb.IncrementRequest, context: Any) -> pb.IncrementResponse:
        ns = self.namespaces.get(request.namespace)
        value = await self._add(ns, self._key(request.key), request.delta)
        return pb.IncrementResponse(value=value)

    async def Decrement(self, request: pb.DecrementRequest, context: Any) -> pb.DecrementResponse:
        ns = self.namespaces.get(request.namespace)
        value = await self._add(ns, self._key(request.key), -(request.delta))
        return pb.DecrementResponse(value=value)

    # -- many keys ------------------------------------------------------------------------------

    async def GetMultiple(
        self, request: pb.GetMultipleRequest, context: Any
    ) -> pb.GetMultipleResponse:
        """The present entries that fit in one response, read in batches: once the response is
        full, the keys not read yet go to ``unread_keys`` without being read (the client asks
        for them again), so a key is read, and its hit counted, about once per ``get_many``.

        A batch holds no more values of the largest size seen than the room left, and at most
        twice the keys read so far: after a leading miss or a small value, the next batch is
        not every remaining key (each read again by the follow-ups, all held in memory at once).
        """
        ns = self.namespaces.get(request.namespace)
        keys = list(dict.fromkeys(self._keys(request.keys)))  # each key once, in order
        budget = self.max_message_bytes - _HEADROOM
        response = pb.GetMultipleResponse()
        entries = response.entries
        # unread_after[i]: bytes of keys[i:] listed as unread (an upper bound of what the
        # response would list if it stopped before keys[i]).
        unread_after = [0] * (len(keys) + 1)
        for i in range(len(keys) - 1, -1, -1):
            unread_after[i] = unread_after[i + 1] + _field_size(len(keys[i].encode()))
        sniff, packs = not ns.marks, ns.packs
        total = 0  # bytes of the entries kept so far
        largest = 0  # bytes of the largest entry kept so far
        start = 0
        batch = _FIRST_BATCH
        while start < len(keys):
            chunk = keys[start : start + batch]
            found = await ns.cache.aget_many(chunk)
            for i, key in enumerate(chunk, start):
                if key not in found:
                    continue
                entry = entries.add()
                entry.key = key
                _fill(entry.value, found[key], sniff, packs)
                size = _field_size(entry.ByteSize())
                # The keys left unread are listed in the response: they count too.
                if total + size + unread_after[i + 1] > budget:
                    rest = [k for k in keys[i + 1 : start + len(chunk)] if k in found]
                    unread = [*rest, *await _present(ns.cache, keys[start + len(chunk) :])]
                    if len(entries) > 1:
                        del entries[-1]
                        unread.insert(0, key)
                    else:  # the first entry is sent (progress), if it fits beside the list
                        self._check_first(key, size, unread)
                    response.unread_keys.extend(unread)
                    return response
                total += size
                largest = max(largest, size)
            start += len(chunk)
            if start < len(keys):
                room = budget - total - unread_after[start]
                if entries and room < largest:  # the next value might not fit: not read
                    response.unread_keys.extend(await _present(ns.cache, keys[start:]))
                    return response
                batch = max(1, min(_MAX_KEYS_PER_CALL, 2 * start, room // max(largest, 1)))
        return response

    def _check_first(self, key: str, size: int, unread: list[str]) -> None:
        """Refuse a response whose one entry and list of unread keys pass the message limit.

        Sent anyway it fails with ``RESOURCE_EXHAUSTED`` on every retry (the same request, the
        same answer); refused, the client asks for fewer keys at once (``GrpcCache`` halves).
        """
        listed = sum(_field_size(len(k.encode())) for k in unread)
        if size + listed > self.max_message_bytes - _HEADROOM:
            raise ValueTooLarge(
                f"the entry of {key[:64]!r} ({size} bytes) and the {len(unread)} keys left unread "
                f"({listed} bytes) do not fit in one response of max_message_bytes="
                f"{self.max_message_bytes}: ask for fewer keys at once"
            )

    async def SetMultiple(
        self, request: pb.SetMultipleRequest, context: Any
    ) -> pb.SetMultipleResponse:
        """Bad input fails the call; a value over the limit is one of ``failed_keys`` (as the
        providers' ``set_many`` return a value too large to store), the others are stored."""
        ns = self.namespaces.get(request.namespace)
        mapping: dict[str, Any] = {}
        too_large: list[str] = []
        for key, value in request.values.items():
            try:
                mapping[key] = self._stored(value, ns)
            except ValueTooLarge:
                too_large.append(key)
        self._keys([*mapping, *too_large])
        ttl = ns.effective_ttl(request_ttl(request))
        if request.tags:
            tags = _tags(request.tags)
            failed = await _distributed(ns, "tag entries").aset_many(mapping, ttl, tags=tags)
        else:
            failed = await ns.cache.aset_many(mapping, ttl)
        rejected = set(failed)
        ns.hub.publish_keys(EventKind.SET, [k for k in mapping if k not in rejected])
        return pb.SetMultipleResponse(failed_keys=[*too_large, *failed])

    async def DeleteMultiple(
        self, request: pb.DeleteMultipleRequest, context: Any
    ) -> pb.DeleteMultipleResponse:
        ns = self.namespaces.get(request.namespace)
        keys = self._keys(request.keys)
        deleted = await ns.cache.adelete_many(keys)
        if deleted:
            ns.hub.publish_keys(EventKind.DELETE, keys)
        return pb.DeleteMultipleResponse(deleted=deleted)

    # -- the namespace ----------------------------------------------------------------------------

    async def Clear(self, request: pb.ClearRequest, context: Any) -> pb.ClearResponse:
        ns = self.namespaces.get(request.namespace)
        if not request.pattern:
            await ns.cache.aclear()
            ns.hub.publish(EventKind.CLEAR)
            return pb.ClearResponse()
        return pb.ClearResponse(deleted=await self._delete_pattern(ns, request.pattern))

    async def DeletePattern(
        self, request: pb.DeletePatternRequest, context: Any
    ) -> pb.DeletePatternResponse:
        ns = self.namespaces.get(request.namespace)
        return pb.DeletePatternResponse(count=await self._delete_pattern(ns, request.pattern))

    @staticmethod
    async def _delete_pattern(ns: Namespace, pattern: str) -> int:
        """``Clear`` with a pattern and ``DeletePattern``: one CLEAR event with the pattern."""
        pattern = check_pattern(pattern)  # the core's glob rules; empty is InvalidKey
        deleted = await _distributed(ns, "delete by pattern").adelete_pattern(pattern)
        ns.hub.publish(EventKind.CLEAR, pattern=pattern)
        return deleted

    async def InvalidateTags(
        self, request: pb.InvalidateTagsRequest, context: Any
    ) -> pb.InvalidateTagsResponse:
        ns = self.namespaces.get(request.namespace)
        tags = _tags(request.tags)
        cache = _distributed(ns, "invalidate tags")
        if not tags:
            return pb.InvalidateTagsResponse(count=0)
        count = await cache.ainvalidate_tags(tags)
        if count:
            # The provider removes the keys without naming them: subscribers get one CLEAR with
            # the tags and no pattern, which drops a near cache that does not record tags.
            ns.hub.publish(EventKind.CLEAR, tags=tuple(sorted(tags)))
        return pb.InvalidateTagsResponse(count=count)

    async def Keys(self, request: pb.KeysRequest, context: Any) -> pb.KeysResponse:
        ns = self.namespaces.get(request.namespace)
        if request.page_size < 0:
            raise InvalidArgument(f"page_size must not be negative, got {request.page_size}")
        count = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        pattern = check_pattern(request.pattern or "*")
        token = request.page_token
        memory = isinstance(ns.cache, MemoryCache)
        if memory:
            token = _open_token(ns.name, token)
        native = getattr(ns.cache, "_native_scan_cursor", False)  # Redis SCAN: unsigned 64-bit
        if native and token.isdecimal() and int(token) > _MAX_SCAN_CURSOR:
            raise InvalidArgument(f"not a cursor this cache handed out: {token!r}")
        seal = _seal_token if memory else _as_is
        cursor, keys = await ns.cache.ascan_keys(pattern, cursor=token, count=count)
        response = pb.KeysResponse(keys=keys, next_page_token=seal(ns.name, cursor))
        budget = self.max_message_bytes - _HEADROOM
        while (size := response.ByteSize()) > budget and count > 1:
            # Too big a page (long keys): the same page again, smaller. A scan from one token
            # reads and changes nothing, so asking it again with a smaller count is safe.
            count = max(1, min(count - 1, len(keys) * budget // size))
            cursor, keys = await ns.cache.ascan_keys(pattern, cursor=token, count=count)
            response = pb.KeysResponse(keys=keys, next_page_token=seal(ns.name, cursor))
        return response

    async def GetStats(self, request: pb.GetStatsRequest, context: Any) -> pb.GetStatsResponse:
        ns = self.namespaces.get(request.namespace)
        return pb.GetStatsResponse(stats=stats_message(await ns.cache.aget_stats()))

    async def Flush(self, request: pb.FlushRequest, context: Any) -> pb.FlushResponse:
        targets = [self.namespaces.get(n) for n in request.namespaces] or list(self.namespaces)
        for ns in targets:
            await ns.cache.aclear()
            ns.hub.publish(EventKind.CLEAR)
        return pb.FlushResponse(namespaces=[ns.name for ns in targets])

    # -- invalidation stream --------------------------------------------------------------------

    async def Watch(
        self, request: pb.WatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.WatchResponse]:
        ns = self.namespaces.get(request.namespace)
        sub = ns.hub.subscribe()
        try:
            await context.send_initial_metadata((("cachekit-watch", "subscribed"),))
            while True:
                event: Event = await sub.next()
                if event.kind == SERVER_STOPPING:
                    return
                yield pb.WatchResponse(
                    namespace=ns.name,
                    key=event.key,
                    kind=event.kind,  # type: ignore[arg-type]
                    pattern=event.pattern,
                    time=timestamp(event.time),
                    tags=event.tags,
                )
                if event.kind == EventKind.NAMESPACE_DELETED:
                    return
        finally:
            ns.hub.unsubscribe(sub)
