"""The serializer contract, and the one implementation every built-in codec shares.

Providers depend only on :class:`Serializer` (``dumps``/``loads``/``name``). The built-in codecs
subclass :class:`CodecSerializer`, which owns what must be identical for all of them: the
header-less integer rule, raw ``bytes``/``str``, compression, signing, and reading (any codec's
output, under the :class:`~cachekit.serialization.reader.Reader` trust rules). A codec only
supplies ``_encode`` (value -> body) and, if it needs its own, a decoder.

``dumps``/``loads`` run on every network cache operation, so headers are precomputed bytes and the
common paths are a few type checks, one concatenation and, when signing, one HMAC.
"""

from __future__ import annotations

import abc
import sys
from collections.abc import Callable
from typing import Any, ClassVar, Final, TypedDict

from cachekit.errors import ConfigurationError, SerializationError

from .compression import (
    MAX_DECOMPRESSED_SIZE,
    SET_NOISE,
    SET_REPEAT,
    SET_SPAN,
    SET_STEP,
    make_compressor,
    make_probe,
)
from .header import Codec, Compression, pack_header
from .reader import KEPT_EXTRAS, Kept, Reader

__all__ = ["CodecSerializer", "Serializer", "SerializerOptions"]


class Serializer(abc.ABC):
    """Turns cache values into bytes and back; what providers and the registry depend on."""

    #: Registry name (``"json"``, ``"pickle"``...).
    name: ClassVar[str]

    @abc.abstractmethod
    def dumps(self, value: Any) -> bytes:
        """Encode ``value``; an unencodable value raises SerializationError."""

    @abc.abstractmethod
    def loads(self, data: bytes) -> Any:
        """Decode bytes from :meth:`dumps`; bad or untrusted bytes raise SerializationError."""

    def dumps_parts(self, value: Any) -> tuple[bytes, bytes]:
        """:meth:`dumps` as ``(head, body)``, whose concatenation is what :meth:`dumps` returns:
        a writer that gathers its send (memcached's) then never copies a large body behind a
        small header. This default joins nothing and returns ``(b"", dumps(value))``."""
        return b"", self.dumps(value)


class SerializerOptions(TypedDict, total=False):
    """The options every built-in serializer accepts (those of ``make_serializer``)."""

    compression: str
    compress_threshold: int
    compress_level: int | None
    secret: bytes | str | None
    max_decompressed_size: int


class CodecSerializer(Reader, Serializer):
    """Writes the cachekit envelope around one codec's body; reads any codec's."""

    #: Header codec id of the values this serializer encodes itself.
    codec_id: ClassVar[Codec]
    #: Only the pickle serializer reads pickle; see the reader's trust rules.
    reads_pickle: ClassVar[bool] = False

    # Set by each codec's __init__: value -> body, and the exceptions of _encode that mean
    # "this value cannot be encoded" (re-raised as SerializationError). An attribute, not a
    # method, so that it can be a C function or partial with no Python frame of its own.
    _encode: Callable[[Any], bytes]
    _encode_errors: tuple[type[BaseException], ...]

    def __init__(
        self,
        *,
        compression: str = "auto",
        compress_threshold: int = 1024,
        compress_level: int | None = None,
        secret: bytes | str | None = None,
        max_decompressed_size: int = MAX_DECOMPRESSED_SIZE,
    ) -> None:
        if type(compress_threshold) is not int or compress_threshold < 0:
            raise ConfigurationError(
                f"compress_threshold must be an int >= 0, got {compress_threshold!r}",
                key="compress_threshold",
            )
        compressor = make_compressor(compression, compress_level)
        super().__init__(
            secret=secret,
            allow_pickle=self.reads_pickle,
            max_decompressed_size=max_decompressed_size,
        )
        self.compression = "none" if compressor is None else compressor.name
        self.compress_threshold = compress_threshold
        self.compress_level = None if compressor is None else compressor.level
        method = Compression.NONE if compressor is None else compressor.method
        # Without a compressor the threshold is unreachable, so _seal needs no second test.
        self._threshold = sys.maxsize if compressor is None else compress_threshold
        self._compress = _never if compressor is None else compressor.compress
        self._probe = _no_probe if compressor is None else make_probe(compressor)
        self._raw_headers = self._headers(Codec.RAW, method)
        self._str_headers = self._headers(Codec.STR, method)
        self._codec_headers = self._headers(self.codec_id, method)
        self._kept_headers = self._headers(Codec.RAW, method, KEPT_EXTRAS)
        self._compression_method = method
        cls = type(self)
        self._splits = cls.dumps is cls._dumps_writing_bytes_raw

    def _headers(self, codec: int, method: int, extras: bytes | None = None) -> tuple[bytes, bytes]:
        """The (uncompressed, compressed) headers of one codec, computed once."""
        signed = self._mac is not None
        return (
            pack_header(codec, Compression.NONE, signed=signed, extras=extras),
            pack_header(codec, method, signed=signed, extras=extras),
        )

    #: The ``dumps`` that encodes ``bytes`` exactly as :meth:`dumps_parts` splits them: a
    #: subclass that overrides ``dumps`` is not split past (one that hands ``bytes`` on to
    #: this ``dumps`` unchanged may name its own ``dumps`` here).
    _dumps_writing_bytes_raw: ClassVar[Callable[..., bytes]]

    def dumps(self, value: Any) -> bytes:
        tp = type(value)
        if tp is int:  # exactly int: bool and IntEnum keep their types through the codec
            try:
                return b"%d" % value
            except ValueError as exc:  # beyond sys.get_int_max_str_digits()
                raise SerializationError(f"integer too large to store: {exc}") from exc
        if tp is str:
            try:
                text = value.encode("utf-8")
            except UnicodeEncodeError:
                pass  # lone surrogates are not UTF-8: let the codec decide (pickle can)
            else:
                return self._seal(self._str_headers, text)
        elif tp is bytes:
            return self._seal(self._raw_headers, value)
        elif tp is Kept:  # an envelope kept as given (reader.Kept): marked by the extras
            return self._seal(self._kept_headers, value)
        try:
            body = self._encode(value)
        except self._encode_errors as exc:
            raise SerializationError(
                f"the {self.name} serializer cannot encode {tp.__name__}: {exc}"
            ) from exc
        return self._seal(self._codec_headers, body)

    def dumps_parts(self, value: Any) -> tuple[bytes, bytes]:
        # Split only where it saves a copy worth having: an unsigned ``bytes`` value, whose
        # body is the caller's own object (signing hashes the joined form anyway); and only
        # while dumps is one that writes bytes as this does, never past a subclass's own.
        if type(value) is not bytes or self._mac is not None or not self._splits:
            return b"", self.dumps(value)
        headers = self._raw_headers
        size = len(value)
        if size < self._threshold or self._stays_raw(value, size):
            return headers[0], value
        packed = self._compress(value)
        return (headers[1], packed) if len(packed) < size else (headers[0], value)

    def _stays_raw(self, body: bytes, size: int) -> bool:
        """Whether a body at or over the threshold is stored uncompressed: too small to probe
        (under _PROBE_FROM it is compressed and kept if smaller), or noise-like, or its probe
        does not shrink."""
        return size >= _PROBE_FROM and (
            # compression.noise_like(body[:_PROBE]), inlined: for noise (media, encrypted or
            # compressed blobs) this test is all compression costs a write, and two Python
            # calls and a slice were a third of it.
            (
                len((head := body[:SET_SPAN]).translate(None, head[::SET_STEP])) >= _SET_LIMIT
                and body.find(body[_REPEAT_AT:_PROBE], 0, _REPEAT_AT) < 0
            )
            or self._probe(body[:_PROBE]) >= _PROBE_KEEP
        )

    def _seal(self, headers: tuple[bytes, bytes], body: bytes) -> bytes:
        size = len(body)
        if size < self._threshold or self._stays_raw(body, size):
            out = headers[0] + body
        else:
            packed = self._compress(body)
            out = headers[1] + packed if len(packed) < size else headers[0] + body
        mac = self._mac
        if mac is None:
            return out
        mac = mac.copy()
        mac.update(out)
        return out + mac.digest()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} compression={self.compression!r} "
            f"threshold={self.compress_threshold} signed={self.signed}>"
        )


CodecSerializer._dumps_writing_bytes_raw = CodecSerializer.dumps


# Large bodies are probed before being compressed whole: their first _PROBE bytes, compressed
# by the cheapest codec at hand (compression.make_probe), must shrink below _PROBE_KEEP (by 10%,
# frame overhead included). Random or already-compressed data (media,
# gzip, encrypted blobs) then costs a ~2 us probe instead of a full pass (~14 us for 10 KB of
# zstd level 3) whose output would be thrown away. A body whose head is incompressible but whose
# tail is not is stored uncompressed: rare in a cache, and still correct.
_PROBE_FROM: Final = 4096
_PROBE: Final = 512
_PROBE_KEEP: Final = _PROBE * 9 // 10
_SET_LIMIT: Final = SET_SPAN * SET_NOISE
_REPEAT_AT: Final = _PROBE - SET_REPEAT


def _no_probe(data: bytes) -> int:  # pragma: no cover - unreachable, as _never
    raise AssertionError("compression is disabled")


def _never(data: bytes) -> bytes:  # pragma: no cover - unreachable: the threshold is sys.maxsize
    raise AssertionError("compression is disabled")
