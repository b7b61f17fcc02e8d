"""The MessagePack codec (``cachekit[fast]``): JSON's types plus bytes and non-str keys, compact.

Arrays come back as ``list``, except map keys, which come back as ``tuple`` (a list is not
hashable), so ``{(1, 2): "a"}`` round-trips; integers must fit in 64 bits. Maps may have other
hashable scalar keys too (``strict_map_key=False``): ``{1: "a"}`` round-trips, unlike with JSON.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any, ClassVar, Unpack

from cachekit.errors import SerializationError

from . import _optional
from .base import CodecSerializer, SerializerOptions
from .header import Codec
from .reader import Decoder

__all__ = ["MsgpackSerializer", "make_decoder"]


def make_decoder() -> Decoder:
    """A msgpack decoder; without msgpack installed, one that says which extra to install."""
    msgpack = _optional.load("msgpack")
    if msgpack is None:

        def decode_missing(body: bytes, extras: bytes) -> Any:
            raise _optional.missing("msgpack", "msgpack")

        return decode_missing
    unpackb = msgpack.unpackb
    errors = (ValueError, TypeError, msgpack.UnpackException)

    def decode_msgpack(body: bytes, extras: bytes) -> Any:
        try:
            return unpackb(body, raw=False, strict_map_key=False)
        except TypeError:  # a tuple key, read as an unhashable list: decode again, see below
            pass
        except errors as exc:  # truncated/extra data, bad format
            raise SerializationError(f"corrupt msgpack payload: {exc}") from exc
        try:
            return unpackb(body, raw=False, strict_map_key=False, object_pairs_hook=_tuple_keys)
        except errors as exc:  # still unhashable (a map in a key): no Python value packs so
            raise SerializationError(f"corrupt msgpack payload: {exc}") from exc

    return decode_msgpack


def _tuple_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """A map whose array keys become tuples, as the writer's tuple keys were. Only payloads
    with such keys pay for this hook: it makes every map a Python call."""
    return {_hashable(key) if type(key) is list else key: value for key, value in pairs}


def _hashable(key: list[Any]) -> tuple[Any, ...]:
    """``key`` with its lists, nested ones too, as tuples; iterative, since a key may nest
    deeper than Python's recursion limit (the packer allowed it)."""
    stack: list[tuple[Iterator[Any], list[Any]]] = [(iter(key), [])]
    while True:
        items, converted = stack[-1]
        for item in items:
            if type(item) is list:
                stack.append((iter(item), []))
                break
            converted.append(item)
        else:
            stack.pop()
            if not stack:
                return tuple(converted)
            stack[-1][1].append(tuple(converted))


class _Pack:
    """One ``Packer`` per thread: twice as fast as ``packb``, and Packers are not thread-safe."""

    def __init__(self, msgpack: ModuleType) -> None:
        self._packer_type = msgpack.Packer
        self._local = threading.local()

    def __call__(self, value: Any) -> bytes:
        try:
            packer = self._local.packer
        except AttributeError:
            packer = self._local.packer = self._packer_type(use_bin_type=True)
        return packer.pack(value)  # type: ignore[no-any-return]


class MsgpackSerializer(CodecSerializer):
    """MessagePack; constructing it without msgpack installed names the ``fast`` extra."""

    name: ClassVar[str] = "msgpack"
    codec_id: ClassVar[Codec] = Codec.MSGPACK

    def __init__(self, **options: Unpack[SerializerOptions]) -> None:
        msgpack = _optional.require("msgpack", key="serializer", what="serializer 'msgpack'")
        super().__init__(**options)
        self._decoders[Codec.MSGPACK] = make_decoder()
        self._encode = _Pack(msgpack)
        self._encode_errors = (TypeError, ValueError, OverflowError)
