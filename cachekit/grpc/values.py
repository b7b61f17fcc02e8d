"""How wire values (bytes + content type) map onto what a namespace stores, and back.

The server stores the decoded value wherever it can decode one without trusting the sender:
``application/json`` -> the JSON object, ``text/plain`` -> ``str``, octets -> ``bytes``,
``application/vnd.cachekit.int`` -> ``int``, and an ``application/vnd.cachekit`` envelope of
those codecs likewise. So the namespace's own serializer stores it as an in-process ``set``
would, and Django views or direct provider readers sharing the namespace read the object. A
read answers the plainest view of the stored value: ``str`` as text, ``int`` as the integer
type, ``bytes`` as octets, an object JSON carries exactly as ``application/json``, anything
else as a pickle envelope. What the server must not or cannot decode (pickle, signed values,
protobuf, and MessagePack, validated but kept as sent) is stored as the envelope and read back
as its view, stored as a :class:`Kept` (``cachekit.serialization.reader.Kept``): its type, not
its first byte, tells it from ``bytes`` values. The table is in ``docs/grpc.md``.
"""

from __future__ import annotations

import functools
import json
import math
import pickle
import re
from typing import Any, Final

from ..errors import InvalidArgument, SerializationError, ValueTooLarge
from ..serialization.compression import MAX_DECOMPRESSED_SIZE
from ..serialization.header import (
    COMPRESSION_MASK,
    HEADER_SIZE,
    VERSION,
    Codec,
    Compression,
    pack_header,
    parse_decimal,
    parse_header,
)
from ..serialization.reader import Kept, Reader

__all__ = [
    "CACHEKIT",
    "INTEGER",
    "JSON",
    "MSGPACK",
    "OCTETS",
    "PROTOBUF",
    "TEXT",
    "InvalidValue",
    "Kept",
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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (RFC 8259)")


_MAGIC: Final = 0xC1
_RAW: Final = _HEADERS[Codec.RAW]
#: Codecs whose envelopes the server decodes into the value it stores (see to_stored).
_DECODED: Final = frozenset({Codec.RAW, Codec.STR, Codec.JSON})
#: Header flags that keep an envelope as sent: signed (no secret here), extras, reserved.
_KEPT_FLAGS: Final = 0xFF & ~COMPRESSION_MASK
#: Decodes envelopes; never pickle, no secret (signed envelopes are not decoded at all).
_READER: Final = Reader(allow_pickle=False)
_TEXTS: Final = frozenset({"application/json", "text/plain"})
_JSON_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
_JSON_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
#: The integers cachekit's JSON codec writes (its range; other languages read them exactly).
_JSON_INT_MIN: Final = -(2**63)
_JSON_INT_MAX: Final = 2**64 - 1
#: Deepest nesting stored as JSON: the stdlib encoder and decoder recurse once per level, and
#: must not run out of stack on a read (Python's recursion limit is 1000 by default).
_JSON_MAX_DEPTH: Final = 512
#: A lone surrogate (``"\\ud800"`` decodes to one): JSON text, being UTF-8, cannot carry it.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


class InvalidValue(InvalidArgument):
    """A value's bytes do not match its content type, or the type is not one we read; sent to
    clients as the public ``InvalidArgument`` (a Python client raises that)."""


def _parse_type(content_type: str) -> tuple[str, dict[str, str]]:
    main, *params = content_type.split(";")
    found: dict[str, str] = {}
    for param in params:
        name, sep, value = param.partition("=")
        if not sep:
            raise InvalidValue(f"malformed content type parameter {param.strip()!r}")
        found[name.strip().lower()] = value.strip().strip('"')
    return main.strip().lower(), found


def to_stored(
    content_type: str,
    data: bytes,
    max_decompressed: int = MAX_DECOMPRESSED_SIZE,
    marked: bool = True,
) -> Any:
    """The value a namespace stores for wire bytes of ``content_type`` (validated).

    The decoded Python value wherever the server can decode it without trusting the sender:
    JSON -> its object, text -> ``str``, octets -> ``bytes``, integers -> ``int``, and the same
    for a ``application/vnd.cachekit`` envelope of those codecs (compressed or not). So the
    namespace stores it as an in-process ``set`` would, and in-process readers get the object.
    What the server cannot or must not decode stays the envelope (``bytes``): pickle (decoding
    it runs code), signed values (the server has no secret), protobuf (no message class) and
    MessagePack (validated; kept as sent so that it reads back as ``application/msgpack``),
    stored as a :class:`Kept`. Octets are stored unchanged. Unless ``marked`` (a namespace whose
    cache cannot hold a ``Kept``): then kept envelopes are plain ``bytes``, and octets whose
    first byte is the envelope magic ``0xC1`` stay behind a RAW header, so that they are never
    mistaken for an envelope when read back (:func:`to_wire` with ``sniff``). A compressed
    envelope is decoded only if it decompresses to at most ``max_decompressed`` bytes (the
    server passes its value limit: the value must read back within a response); a bigger one
    stays as sent.
    """
    if content_type == OCTETS or not content_type:  # raw bytes: the hot path
        return _RAW + data if not marked and data[:1] == b"\xc1" else data
    if content_type != CACHEKIT:
        main, params = _parse_type(content_type)
        if main in _TEXTS:  # decoded once, here (not validated, then decoded again)
            return _text(main, params, data, max_decompressed)
    payload = _envelope_of(content_type, data)
    if type(payload) is int:
        return payload
    value = _decoded(payload, max_decompressed)  # type: ignore[arg-type]
    if value is payload:  # kept as sent
        return Kept(value) if marked else value
    if not marked and type(value) is bytes and value[:1] == b"\xc1":
        return _RAW + value  # never read back as an envelope
    return value


def _text(main: str, params: dict[str, str], data: bytes, limit: int | None = None) -> Any:
    """The ``str`` of ``text/plain`` bytes, or the object of ``application/json`` (validated;
    with a ``limit``, also one that reads back as JSON of at most ``limit`` bytes)."""
    charset = params.get("charset", "utf-8").lower()
    if charset not in {"utf-8", "utf8"}:
        raise InvalidValue(f"{main}: only UTF-8 is accepted, not charset={charset}")
    try:
        text = data.decode("utf-8")
        if main != "application/json":
            return text
        value = _JSON_DECODER.decode(text)  # RFC 8259: NaN and Infinity are refused
    except (ValueError, RecursionError) as exc:
        raise InvalidValue(f"{main}: the bytes are not valid: {exc}") from None
    if limit is not None:
        _check_json(value, limit)
    return value


def _decoded(payload: bytes, max_decompressed: int) -> Any:
    """The value of an envelope when it is one of the codecs decoded here; else the envelope."""
    if len(payload) < HEADER_SIZE or payload[3] & _KEPT_FLAGS or payload[2] not in _DECODED:
        return payload
    compressed = payload[3] & COMPRESSION_MASK
    try:
        value = (_reader(max_decompressed) if compressed else _READER).loads(payload)
    except (SerializationError, RecursionError) as exc:
        if compressed:  # over the limit (or a body only a reader would find corrupt): as sent
            return payload
        raise InvalidValue(f"{CACHEKIT}: {exc}") from None
    if payload[2] == Codec.JSON:
        _check_json(value, max_decompressed)
    return value


def _check_json(value: Any, limit: int) -> None:
    """Refuse decoded JSON that would not read back as JSON of at most ``limit`` bytes.

    Valid JSON can decode to what JSON cannot carry back: ``1e400`` is ``inf``, ``"\\ud800"``
    a lone surrogate, ``18446744073709551616`` an integer other readers round; and deeper
    nesting than reads can encode. Stored, it read back as a pickle envelope (or, through a
    JSON serializer, as ``null``). Floats are written back in Python's spelling (``1e15`` as
    ``1000000000000000.0``), the one part of the text that can grow: then the written size is
    measured, so that a value accepted by Set always fits in a Get response.
    """
    floats = _json_floats(value)
    if floats < 0:
        raise InvalidValue(
            f"{JSON}: valid JSON that would not read back as the same JSON (a number out of "
            f"range such as 1e400 or an integer outside [-2**63, 2**64 - 1], a lone surrogate "
            f"escape, or nesting deeper than {_JSON_MAX_DEPTH} levels)"
        )
    if floats:
        try:
            size = len(_JSON_ENCODER.encode(value).encode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise InvalidValue(f"{JSON}: would not read back as JSON: {exc}") from None
        if size > limit:
            raise ValueTooLarge(
                f"{JSON} value reads back as {size} bytes (its numbers respelled), over this "
                f"server's limit of {limit} bytes"
            )


@functools.lru_cache(maxsize=8)
def _reader(max_decompressed: int) -> Reader:
    return Reader(allow_pickle=False, max_decompressed_size=max_decompressed)


def _check_msgpack(data: bytes) -> None:
    """Exactly one MessagePack object (when msgpack is installed; else not validated), as
    cachekit's MessagePack serializer reads it: maps with array keys included (it writes tuple
    keys so; msgpack's own reader refuses them)."""
    decode = _msgpack_decoder()
    if decode is None:
        return
    try:
        decode(data, b"")
    except Exception as exc:  # SerializationError, and whatever else a corrupt body raises
        raise InvalidValue(f"{MSGPACK}: the bytes are not one MessagePack object: {exc}") from None


@functools.cache
def _msgpack_decoder() -> Any:
    """cachekit's MessagePack decoder, or None without msgpack installed."""
    try:
        import msgpack  # noqa: F401
    except ImportError:
        return None
    from ..serialization.msgpack import make_decoder

    return make_decoder()


def _envelope_of(content_type: str, data: bytes) -> int | bytes:
    """The cachekit payload (an envelope, or an int) for wire bytes of ``content_type``,
    validated: what a serializer loads (:func:`envelope`), and what :func:`to_stored` decodes."""
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
    if main in _TEXTS:
        _text(main, params, data)  # validated
        return _HEADERS[Codec.JSON if main == "application/json" else Codec.STR] + data
    if main in {MSGPACK, "application/x-msgpack"}:
        _check_msgpack(data)
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


def to_wire(stored: Any, sniff: bool = False, packs: bool = False) -> tuple[str, bytes]:
    """``(content_type, data)`` for a stored value: the plainest view its envelope allows.

    ``bytes`` are octets, a :class:`Kept` an envelope; with ``sniff`` (a namespace whose cache
    cannot hold a ``Kept``, see :func:`to_stored`) ``bytes`` starting with ``0xC1`` are too.
    With ``packs`` (a MessagePack namespace), an object JSON cannot carry exactly (bytes in
    it, keys that are not ``str``) is MessagePack rather than a pickle envelope, which a
    MessagePack client refuses to read.
    """
    tp = type(stored)
    if tp is bytes:
        if not sniff or not stored or stored[0] != _MAGIC:
            return OCTETS, stored  # bytes written in-process, whatever their first byte
        return _view(stored)
    if tp is Kept:
        return _view(stored)
    if tp is int:
        return INTEGER, str(stored).encode("ascii")
    if tp is str:
        try:
            return TEXT, stored.encode("utf-8")
        except UnicodeEncodeError:
            pass  # lone surrogates are not UTF-8: pickled below, exactly
    # A Python object (decoded JSON, or stored in-process by a Django view sharing the
    # namespace): JSON when JSON carries it exactly, else pickled, exactly.
    if _json_floats(stored) >= 0:
        try:
            return JSON, _JSON_ENCODER.encode(stored).encode("utf-8")
        except (ValueError, TypeError, UnicodeEncodeError, RecursionError):
            pass
    if packs:
        packed = _packed(stored)
        if packed is not None:
            return MSGPACK, packed
    try:
        return CACHEKIT, pack_header(Codec.PICKLE) + pickle.dumps(stored, protocol=5)
    except Exception as exc:
        raise SerializationError(f"stored value of type {type(stored).__name__}: {exc}") from exc


def _packed(stored: Any) -> bytes | None:
    """``stored`` as MessagePack, or None if it cannot be packed (a value read from a
    MessagePack namespace was unpacked, so it packs back as it was)."""
    try:
        import msgpack
    except ImportError:  # pragma: no cover - a MessagePack namespace needs it
        return None
    try:
        return msgpack.packb(stored, use_bin_type=True)  # type: ignore[no-any-return]
    except Exception:  # a type or an integer MessagePack cannot carry: pickled instead
        return None


def _view(stored: bytes) -> tuple[str, bytes]:
    """The plainest view of a stored envelope."""
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


def _json_floats(value: Any) -> int:
    """The number of floats in ``value`` if JSON text decodes back to exactly ``value`` (same
    types, all the way down, at most ``_JSON_MAX_DEPTH`` deep); else -1. Iterative: any depth
    is walked without recursion."""
    floats = 0
    stack: list[tuple[Any, int]] = [([value], 0)]
    while stack:
        container, depth = stack.pop()
        if type(container) is dict:
            for key in container:
                if type(key) is not str or (not key.isascii() and _SURROGATE.search(key)):
                    return -1
            items = container.values()
        else:
            items = container
        for item in items:
            tp = type(item)
            if tp is str:
                if not item.isascii() and _SURROGATE.search(item):
                    return -1
            elif tp is int:
                if not _JSON_INT_MIN <= item <= _JSON_INT_MAX:
                    return -1
            elif tp is float:
                if not math.isfinite(item):
                    return -1
                floats += 1
            elif tp is list or tp is dict:
                if depth >= _JSON_MAX_DEPTH:
                    return -1
                stack.append((item, depth + 1))
            elif not (tp is bool or item is None):
                return -1
    return floats


def envelope(content_type: str, data: bytes) -> bytes:
    """The cachekit payload (envelope or decimal) for wire bytes: what a serializer loads."""
    stored = _envelope_of(content_type, data)
    return str(stored).encode("ascii") if type(stored) is int else stored  # type: ignore[return-value]
