"""Serializers: how cache values become bytes on network backends, and back.

Every value is written in a small self-describing envelope (``header``), so that any reader, in
any language, knows which codec, compression and signature produced it; plain integers are
written as bare ASCII decimals so that servers can increment them. See ``docs/serialization.md``.

>>> from cachekit.serialization import make_serializer
>>> s = make_serializer("json")
>>> s.loads(s.dumps({"a": [1, 2.5, None]}))
{'a': [1, 2.5, None]}
>>> s.dumps(42)
b'42'
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from cachekit.errors import ConfigurationError

from .base import CodecSerializer, Serializer, SerializerOptions
from .compression import MAX_DECOMPRESSED_SIZE
from .header import Codec, Compression, Header, parse_header
from .json import JsonSerializer
from .msgpack import MsgpackSerializer
from .pickle import PickleSerializer
from .protobuf import ProtobufSerializer
from .reader import Reader, loads_any

__all__ = [
    "MAX_DECOMPRESSED_SIZE",
    "SERIALIZERS",
    "Codec",
    "CodecSerializer",
    "Compression",
    "Header",
    "JsonSerializer",
    "MsgpackSerializer",
    "PickleSerializer",
    "ProtobufSerializer",
    "Reader",
    "Serializer",
    "SerializerOptions",
    "loads_any",
    "make_serializer",
    "parse_header",
]

#: Registry name -> class; importing this never imports an optional driver.
SERIALIZERS: Final[Mapping[str, type[CodecSerializer]]] = MappingProxyType(
    {
        cls.name: cls
        for cls in (JsonSerializer, PickleSerializer, ProtobufSerializer, MsgpackSerializer)
    }
)


def make_serializer(
    name: str = "pickle",
    *,
    compression: str = "auto",
    compress_threshold: int = 1024,
    compress_level: int | None = None,
    secret: bytes | str | None = None,
) -> Serializer:
    """Build a serializer by registry name, validating every option up front.

    Bad options raise :class:`~cachekit.errors.ConfigurationError` naming the option; a codec
    whose driver is missing names the extra to install.
    """
    cls = SERIALIZERS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ConfigurationError(
            f"unknown serializer {name!r}; accepted: {', '.join(sorted(SERIALIZERS))}",
            key="serializer",
        )
    return cls(
        compression=compression,
        compress_threshold=compress_threshold,
        compress_level=compress_level,
        secret=secret,
    )
