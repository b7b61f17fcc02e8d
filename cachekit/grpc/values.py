"""How wire values (bytes + content type) map onto what a namespace stores, and back.

The server stores a value as a cachekit envelope (``docs/serialization.md``), except integers,
which it stores as ``int`` so that ``Increment`` works on every provider. A content type is a
view of an envelope whose body another language can read as it is: ``application/json`` is the
JSON codec's body, ``text/plain`` the STR codec's, and so on. So a Go client that writes JSON
bytes as ``application/json`` and a Python :class:`~cachekit.grpc.client.GrpcCache` with the JSON
serializer read each other's values. What has no such view (pickle, compressed or signed values)
travels as the whole envelope, ``application/vnd.cachekit``. The table is in ``docs/grpc.md``.
"""

from __future__ import annotations

import json
import pickle
from typing import Any, Final

from ..errors import CacheError, SerializationError
from ..serialization.header import (
    HEADER_SIZE,
    VERSION,
    Codec,
    Compression,
    pack_header,
    parse_decimal,
    parse_header,
)

__all__ = [
    "CACHEKIT",
    "INTEGER",
    "JSON",
    "MSGPACK",
    "OCTETS",
    "PROTOBUF",
    "TEXT",
    "InvalidValue",
    "envelope",
    "to_stored",
    "to_wire",
]

CACHEKIT: Final = "application/vnd.cachekit"
INTEGER: Final = "application/vnd.cachekit.int"
JSON: Final = "application/json"
TEXT: Final = "text/plain; charset=utf-8"
OCTETS: Final = "application/octet-stream"
MSGPACK: Final = "application/msgpack"
PROTOBUF: Final = "application/x-protobuf"

_HEADERS: Final = {
    codec: pack_header(codec, Compression.NONE)
    for codec in (Codec.RAW, Codec.STR, Codec.JSON, Codec.MSGPACK)
}
_VIEWS: Final = {
    Codec.RAW: OCTETS,
    Codec.STR: TEXT,
    Codec.JSON: JSON,
    Codec.MSGPACK: MSGPACK,
}
_MAGIC: Final = 0xC1
_RAW: Final = _HEADERS[Codec.RAW]


class InvalidValue(CacheError, ValueError):
    """A value's bytes do not match its content type, or the type is not one we read."""


def _parse_type(content_type: str) -> tuple[str, dict[str, str]]:
    main, *params = content_type.split(";")
    found: dict[str, str] = {}
    for param in params:
        name, sep, value = param.partition("=")
        if not sep:
            raise InvalidValue(f"malformed content type parameter {param.strip()!r}")
        found[name.strip().lower()] = value.strip().strip('"')
    return main.strip().lower(), found


def to_stored(content_type: str, data: bytes) -> int | bytes:
    """The value a namespace stores for wire bytes of ``content_type`` (validated)."""
    if content_type == CACHEKIT:  # the hot path of Python clients
        return _from_envelope(data)
    if content_type == OCTETS or not content_type:  # raw bytes: nothing to validate
        return _RAW + data
    main, params = _parse_type(content_type)
    if main == CACHEKIT:
        return _from_envelope(data)
    if main == INTEGER:
        try:
            return parse_decimal(data)
        except SerializationError as exc:
            raise InvalidValue(f"{INTEGER}: {exc}") from None
    if main in {"", OCTETS}:
        return _HEADERS[Codec.RAW] + data
    if main in {"application/json", "text/plain"}:
        charset = params.get("charset", "utf-8").lower()
        if charset not in {"utf-8", "utf8"}:
            raise InvalidValue(f"{main}: only UTF-8 is accepted, not charset={charset}")
        try:
            text = data.decode("utf-8")
            if main == "application/json":
                json.loads(text)
        except ValueError as exc:
            raise InvalidValue(f"{main}: the bytes are not valid: {exc}") from None
        return _HEADERS[Codec.JSON if main == "application/json" else Codec.STR] + data
    if main in {MSGPACK, "application/x-msgpack"}:
        return _HEADERS[Codec.MSGPACK] + data
    if main in {PROTOBUF, "application/protobuf"}:
        name = params.get("messagetype") or params.get("proto")
        if not name or not name.isascii():
            raise InvalidValue(
                f"{main} needs the message's full type name: {PROTOBUF}; messageType=pkg.Name"
            )
        try:
            return pack_header(Codec.PROTOBUF, extras=name.encode("ascii")) + data
        except SerializationError as exc:
            raise InvalidValue(str(exc)) from None
    raise InvalidValue(
        f"unsupported content type {content_type!r}; accepted: {CACHEKIT}, {INTEGER}, {JSON}, "
        f"text/plain, {OCTETS}, {MSGPACK}, {PROTOBUF}; messageType=NAME"
    )


def _from_envelope(data: bytes) -> int | bytes:
    try:
        if data[:1] != b"\xc1":
            return parse_decimal(data)
        parse_header(data)
    except SerializationError as exc:
        raise InvalidValue(f"{CACHEKIT}: {exc}") from None
    return data


def to_wire(stored: Any) -> tuple[str, bytes]:
    """``(content_type, data)`` for a stored value: the plainest view its envelope allows."""
    if type(stored) is bytes:
        if not stored or stored[0] != _MAGIC:
            return OCTETS, stored  # bytes written in-process, without an envelope
        if len(stored) >= HEADER_SIZE and stored[1] == VERSION and not stored[3]:
            # No flags: uncompressed, unsigned, no extras, so the body starts at byte 4
            # (what parse_header would find, without building a Header per read).
            plain = _VIEWS.get(stored[2])  # type: ignore[call-overload]
            if plain is not None:
                return plain, stored[HEADER_SIZE:]
        try:
            header = parse_header(stored)
        except SerializationError:
            return CACHEKIT, stored  # the reader will say what is wrong with it
        if header.compression or header.signed:
            return CACHEKIT, stored
        body = stored[header.body_offset :]
        view = _VIEWS.get(header.codec)  # type: ignore[call-overload]
        if view is not None:
            return view, body
        if header.codec == Codec.PROTOBUF:
            return f"{PROTOBUF}; messageType={header.extras.decode('ascii')}", body
        return CACHEKIT, stored
    if type(stored) is int:
        return INTEGER, str(stored).encode("ascii")
    if type(stored) is str:
        try:
            return TEXT, stored.encode("utf-8")
        except UnicodeEncodeError:
            pass  # lone surrogates are not UTF-8: pickled below, exactly
    # A Python object stored in-process (a Django view sharing the namespace): pickled, exactly.
    try:
        return CACHEKIT, pack_header(Codec.PICKLE) + pickle.dumps(stored, protocol=5)
    except Exception as exc:
        raise SerializationError(f"stored value of type {type(stored).__name__}: {exc}") from exc


def envelope(content_type: str, data: bytes) -> bytes:
    """The cachekit payload (envelope or decimal) for wire bytes: what a serializer loads."""
    stored = to_stored(content_type, data)
    return str(stored).encode("ascii") if type(stored) is int else stored  # type: ignore[return-value]
