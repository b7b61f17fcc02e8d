"""Decoding any stored value, whichever codec wrote it, under a trust policy.

The header says how a value was written, but not whether the reader should believe it: bytes in a
shared cache may come from anyone who can reach the server. So a :class:`Reader` applies two rules
before a codec sees a byte:

* with a ``secret``, every enveloped payload must carry a valid tag (unsigned ones are refused,
  so that an attacker cannot downgrade a signed deployment by writing unsigned values);
  header-less integers are exempt because the server itself increments them;
* pickle is decoded only when ``allow_pickle`` is set, because unpickling runs code: a JSON
  deployment must not start unpickling because a stored header says "pickle".
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any, Final, TypeAlias

from cachekit.errors import ConfigurationError, SerializationError

from .compression import MAX_DECOMPRESSED_SIZE, decompress
from .header import (
    COMPRESSION_MASK,
    FLAG_EXTRAS,
    FLAG_SIGNED,
    HEADER_SIZE,
    RESERVED_FLAGS,
    VERSION,
    Codec,
    parse_decimal,
)
from .signing import TAG_SIZE, new_mac

__all__ = ["KEPT_EXTRAS", "Decoder", "Kept", "Reader", "loads_any"]

#: Decodes a body (already verified and decompressed) given the header's extras.
Decoder: TypeAlias = Callable[[bytes, bytes], Any]

_MAGIC: Final = b"\xc1"


def _unknown(codec: int, body: bytes, extras: bytes) -> Any:
    raise SerializationError(f"unknown codec id 0x{codec:02x}: written by a newer cachekit?")


_UNKNOWN: Final = tuple(functools.partial(_unknown, codec) for codec in range(256))


#: The extras of a RAW payload whose body is a :class:`Kept` (any other extras: plain bytes).
KEPT_EXTRAS: Final = b"kept"


class Kept(bytes):
    """Bytes that are themselves a cachekit envelope kept as given, undecoded: the gRPC server
    stores so what it must not or cannot decode (pickle, signed, MessagePack, protobuf).

    Every cachekit serializer writes one as RAW with the extras :data:`KEPT_EXTRAS` and reads
    it back as a ``Kept`` (a reader that ignores RAW extras reads the same bytes), so that its
    type, not its first byte, tells it from ``bytes`` values, which may start with the magic.
    """

    __slots__ = ()


def _decode_raw(body: bytes, extras: bytes) -> bytes:
    return Kept(body) if extras == KEPT_EXTRAS else body


def _decode_str(body: bytes, extras: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SerializationError(f"corrupt str payload: {exc}") from exc


class Reader:
    """Decodes payloads written by any cachekit serializer (see the module docstring)."""

    def __init__(
        self,
        *,
        secret: bytes | str | None = None,
        allow_pickle: bool = False,
        max_decompressed_size: int = MAX_DECOMPRESSED_SIZE,
    ) -> None:
        # Imported here, not at the top: the codec modules import this one through base.py.
        from . import json, msgpack, pickle, protobuf

        if type(allow_pickle) is not bool:
            raise ConfigurationError(
                f"allow_pickle must be True or False, got {allow_pickle!r}", key="allow_pickle"
            )
        if type(max_decompressed_size) is not int or max_decompressed_size < 1:
            raise ConfigurationError(
                f"max_decompressed_size must be an int >= 1, got {max_decompressed_size!r}",
                key="max_decompressed_size",
            )
        self._mac = None if secret is None else new_mac(secret)
        self.allow_pickle = allow_pickle
        self.max_decompressed_size = max_decompressed_size
        self._decoders: list[Decoder] = list(_UNKNOWN)
        self._decoders[Codec.RAW] = _decode_raw
        self._decoders[Codec.STR] = _decode_str
        self._decoders[Codec.PICKLE] = pickle.make_decoder(allowed=allow_pickle)
        # Drivers are imported on the first payload that needs them, so that a pickle cache
        # never imports protobuf just in case (a serializer installs its own codec eagerly).
        self._decoders[Codec.JSON] = self._lazy(Codec.JSON, json.make_decoder)
        self._decoders[Codec.MSGPACK] = self._lazy(Codec.MSGPACK, msgpack.make_decoder)
        self._decoders[Codec.PROTOBUF] = self._lazy(Codec.PROTOBUF, protobuf.make_decoder)

    def _lazy(self, codec: Codec, factory: Callable[[], Decoder]) -> Decoder:
        def first_use(body: bytes, extras: bytes) -> Any:
            decoder = self._decoders[codec] = factory()  # a race only builds it twice
            return decoder(body, extras)

        return first_use

    @property
    def signed(self) -> bool:
        """Whether this reader (and writer) signs and demands signatures."""
        return self._mac is not None

    def loads(self, data: bytes) -> Any:
        """Decode ``data``; anything untrusted, corrupt or unknown raises SerializationError."""
        if data[:1] != _MAGIC:
            return parse_decimal(data)
        end = len(data)
        if end < HEADER_SIZE:
            raise SerializationError(f"truncated header: {end} of {HEADER_SIZE} bytes")
        if data[1] != VERSION:
            raise SerializationError(f"unsupported format version {data[1]} (this reader knows 1)")
        flags = data[3]
        if flags & RESERVED_FLAGS or (flags & COMPRESSION_MASK) == 3:
            raise SerializationError(f"unknown flags 0x{flags:02x}: written by a newer cachekit?")
        mac = self._mac
        if flags & FLAG_SIGNED:
            if mac is None:
                raise SerializationError("payload is signed, but this reader has no secret")
            end -= TAG_SIZE
            if end < HEADER_SIZE:
                raise SerializationError("truncated payload: shorter than its signature")
            mac = mac.copy()
            mac.update(memoryview(data)[:end])
            if not hmac.compare_digest(mac.digest(), data[end:]):
                raise SerializationError(
                    "signature does not verify: the payload was tampered with, or was signed "
                    "with another secret"
                )
        elif mac is not None:
            raise SerializationError(
                "unsigned payload refused: this reader has a secret and accepts only signed ones"
            )
        start = HEADER_SIZE
        extras = b""
        if flags & FLAG_EXTRAS:
            start = HEADER_SIZE + 2 + int.from_bytes(data[4:6], "big")
            if end < HEADER_SIZE + 2 or start > end:
                raise SerializationError("truncated header extras")
            extras = data[6:start]
        body = data[start:end]
        if flags & COMPRESSION_MASK:
            body = decompress(flags & COMPRESSION_MASK, body, self.max_decompressed_size)
        return self._decoders[data[2]](body, extras)


@functools.cache
def _default_reader(allow_pickle: bool) -> Reader:
    return Reader(allow_pickle=allow_pickle)


def loads_any(data: bytes, *, secret: bytes | str | None = None, allow_pickle: bool = False) -> Any:
    """Decode a payload written by any serializer; see :class:`Reader` for the trust rules.

    A reader with a secret derives its key on construction: build a :class:`Reader` once rather
    than calling this in a loop with ``secret``.
    """
    reader = (
        _default_reader(allow_pickle)
        if secret is None
        else Reader(secret=secret, allow_pickle=allow_pickle)
    )
    return reader.loads(data)
