"""The self-describing envelope every stored value carries (layout: ``docs/serialization.md``).

Readers in any language must be able to tell, from the bytes alone, which codec wrote a value,
whether it is compressed and whether it is signed. The layout is therefore fixed and versioned:

====== ======= ============================================================================
offset size    meaning
====== ======= ============================================================================
0      1       magic ``0xC1``: never valid in UTF-8 and never an ASCII digit
1      1       format version, ``0x01``
2      1       codec id (:class:`Codec`)
3      1       flags: bits 0-1 compression (:class:`Compression`), bit 2 extras, bit 3 signed
4      2 + n   only with the extras flag: big-endian ``n``, then ``n`` codec-specific bytes
...    ...     body, compressed as bits 0-1 say
end-32 32      only with the signed flag: HMAC-SHA256 tag over every byte before it
====== ======= ============================================================================

Plain ``int`` values carry no envelope at all: they are stored as ASCII decimal so that Redis
``INCR`` and memcached ``incr`` can work on them in place (see :func:`parse_decimal`).
"""

from __future__ import annotations

import enum
import re
from typing import Final, NamedTuple

from cachekit.errors import SerializationError

__all__ = [
    "COMPRESSION_MASK",
    "FLAG_EXTRAS",
    "FLAG_SIGNED",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_EXTRAS",
    "RESERVED_FLAGS",
    "VERSION",
    "Codec",
    "Compression",
    "Header",
    "pack_header",
    "parse_decimal",
    "parse_header",
]

MAGIC: Final = 0xC1
VERSION: Final = 0x01
HEADER_SIZE: Final = 4
COMPRESSION_MASK: Final = 0x03
FLAG_EXTRAS: Final = 0x04
FLAG_SIGNED: Final = 0x08
RESERVED_FLAGS: Final = 0xF0
MAX_EXTRAS: Final = 0xFFFF

# Redis INCR writes canonical decimals; memcached's incr may leave trailing spaces when a number
# gets shorter. Nothing else (no "+", no leading zeros, no "-0") so that one integer has one form.
_DECIMAL: Final = re.compile(rb"(?:0|-?[1-9][0-9]*) *")


class Codec(enum.IntEnum):
    """Byte 2. Ids are stable forever; 0x80-0xFF are left for private, third-party codecs."""

    RAW = 0x01  # bytes, stored as they are
    STR = 0x02  # str, as UTF-8
    JSON = 0x03
    PICKLE = 0x04
    MSGPACK = 0x05
    PROTOBUF = 0x06  # extras: the message's full type name, ASCII


class Compression(enum.IntEnum):
    """Bits 0-1 of byte 3; the value 3 is reserved."""

    NONE = 0
    ZLIB = 1  # an RFC 1950 zlib stream
    ZSTD = 2  # one RFC 8878 Zstandard frame that records its content size


class Header(NamedTuple):
    """A parsed envelope, for tools and tests; the hot path reads the bytes directly."""

    codec: int
    compression: int
    signed: bool
    extras: bytes
    body_offset: int


def pack_header(
    codec: int, compression: int = 0, *, signed: bool = False, extras: bytes | None = None
) -> bytes:
    """Everything that precedes the body; computed once per serializer, not per value."""
    flags = compression | (FLAG_SIGNED if signed else 0)
    if extras is None:
        return bytes((MAGIC, VERSION, codec, flags))
    if len(extras) > MAX_EXTRAS:
        raise SerializationError(f"header extras are limited to {MAX_EXTRAS} bytes")
    return (
        bytes((MAGIC, VERSION, codec, flags | FLAG_EXTRAS))
        + len(extras).to_bytes(2, "big")
        + extras
    )


def parse_header(data: bytes) -> Header:
    """Parse and validate the envelope of ``data`` without verifying or decoding anything."""
    if data[:1] != b"\xc1":
        raise SerializationError("no cachekit header (header-less payloads are decimal integers)")
    if len(data) < HEADER_SIZE:
        raise SerializationError(f"truncated header: {len(data)} of {HEADER_SIZE} bytes")
    if data[1] != VERSION:
        raise SerializationError(f"unsupported format version {data[1]} (this reader knows 1)")
    flags = data[3]
    if flags & RESERVED_FLAGS or (flags & COMPRESSION_MASK) == 3:
        raise SerializationError(f"unknown flags 0x{flags:02x}: written by a newer cachekit?")
    end = len(data) - 32 if flags & FLAG_SIGNED else len(data)
    offset, extras = HEADER_SIZE, b""
    if flags & FLAG_EXTRAS:
        offset = HEADER_SIZE + 2 + int.from_bytes(data[4:6], "big")
        if end < HEADER_SIZE + 2 or offset > end:
            raise SerializationError("truncated header extras")
        extras = data[6:offset]
    if offset > end:
        raise SerializationError("truncated payload: shorter than its signature")
    return Header(data[2], flags & COMPRESSION_MASK, bool(flags & FLAG_SIGNED), extras, offset)


def parse_decimal(data: bytes) -> int:
    """Decode a header-less payload, which must be a decimal integer."""
    if _DECIMAL.fullmatch(data) is None:
        head = data[:1].hex() or "nothing"
        raise SerializationError(
            f"payload has no cachekit header and is not a decimal integer (starts with {head})"
        )
    try:
        return int(data)
    except ValueError as exc:  # more digits than sys.get_int_max_str_digits() allows
        raise SerializationError(f"integer payload rejected: {exc}") from exc
