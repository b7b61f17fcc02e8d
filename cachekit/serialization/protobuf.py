"""The protobuf codec (``cachekit[grpc]``): protobuf messages, decodable without knowing their type.

The header's extras carry the message's full type name (``google.protobuf.Timestamp``), so any
reader can decode a value without being told what to expect: it looks the name up among the
classes registered with the serializer, then in protobuf's default descriptor pool, which holds
every message type whose generated ``_pb2`` module has been imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any, ClassVar, Unpack

from cachekit.errors import ConfigurationError, SerializationError

from . import _optional
from .base import CodecSerializer, SerializerOptions
from .header import Codec
from .reader import Decoder

__all__ = ["ProtobufSerializer", "make_decoder"]


def _protobuf() -> tuple[Any, Any, Any] | None:
    """(message, descriptor_pool, message_factory) modules, or None without protobuf."""
    if _optional.load("google.protobuf") is None:
        return None
    load = importlib.import_module
    return (
        load("google.protobuf.message"),
        load("google.protobuf.descriptor_pool"),
        load("google.protobuf.message_factory"),
    )


def make_decoder(classes: dict[bytes, type] | None = None) -> Decoder:
    """A protobuf decoder knowing ``classes`` (type name -> class) besides the default pool."""
    modules = _protobuf()
    if modules is None:

        def decode_missing(body: bytes, extras: bytes) -> Any:
            raise _optional.missing("google.protobuf", "protobuf")

        return decode_missing
    message, descriptor_pool, message_factory = modules
    known: dict[bytes, Any] = dict(classes or {})

    def resolve(type_name: bytes) -> Any:
        if not type_name:
            raise SerializationError("protobuf payload without a message type name")
        try:
            name = type_name.decode("ascii")
            descriptor = descriptor_pool.Default().FindMessageTypeByName(name)
        except (UnicodeDecodeError, KeyError) as exc:
            raise SerializationError(
                f"unknown protobuf message type {type_name!r}: import its generated _pb2 module "
                "or pass the class in ProtobufSerializer(messages=[...])"
            ) from exc
        cls = known[type_name] = message_factory.GetMessageClass(descriptor)
        return cls

    def decode_protobuf(body: bytes, extras: bytes) -> Any:
        cls = known.get(extras) or resolve(extras)
        try:
            return cls.FromString(body)
        except message.DecodeError as exc:
            raise SerializationError(f"corrupt {extras.decode()} payload: {exc}") from exc

    return decode_protobuf


class ProtobufSerializer(CodecSerializer):
    """Protobuf messages (plus the int/str/bytes every serializer stores natively).

    ``messages``: message classes to decode even if the default descriptor pool lacks them.
    """

    name: ClassVar[str] = "protobuf"
    codec_id: ClassVar[Codec] = Codec.PROTOBUF

    def __init__(
        self, *, messages: Iterable[type] = (), **options: Unpack[SerializerOptions]
    ) -> None:
        modules = _protobuf()
        if modules is None:
            raise _optional.unavailable(
                "google.protobuf", key="serializer", what="serializer 'protobuf'"
            )
        message_type = modules[0].Message
        classes: dict[bytes, type] = {}
        for cls in messages:
            if not (isinstance(cls, type) and issubclass(cls, message_type)):
                raise ConfigurationError(
                    f"messages must be protobuf message classes, got {cls!r}", key="messages"
                )
            classes[cls.DESCRIPTOR.full_name.encode("ascii")] = cls  # type: ignore[attr-defined]
        super().__init__(**options)
        self._message_type: type[Any] = message_type
        self._encode_error: type[Exception] = modules[0].EncodeError
        self._type_headers: dict[type, tuple[bytes, bytes]] = {}
        self._encode = self._refuse
        self._encode_errors = ()
        self._decoders[Codec.PROTOBUF] = make_decoder(classes)

    def _refuse(self, value: Any) -> bytes:
        raise SerializationError(
            "the protobuf serializer stores protobuf messages, int, str and bytes; "
            f"got {type(value).__name__}"
        )

    def dumps(self, value: Any) -> bytes:
        if not isinstance(value, self._message_type):
            return super().dumps(value)
        tp = type(value)
        headers = self._type_headers.get(tp)
        if headers is None:
            name = value.DESCRIPTOR.full_name.encode("ascii")
            headers = self._type_headers[tp] = self._headers(
                Codec.PROTOBUF, self._compression_method, name
            )
        try:
            body = value.SerializeToString()
        except self._encode_error as exc:  # e.g. a proto2 required field is unset
            raise SerializationError(f"cannot encode {tp.__name__}: {exc}") from exc
        return self._seal(headers, body)


# Its dumps hands everything but messages, bytes included, to CodecSerializer.dumps unchanged.
ProtobufSerializer._dumps_writing_bytes_raw = ProtobufSerializer.dumps
