"""Body compression: zlib always, Zstandard when the ``fast`` extra is installed.

Compression is worth its CPU only for large bodies and only when it wins, so the serializer
calls a compressor above a size threshold and keeps the result only if it is smaller. Reading is
the dangerous side: a small payload from a shared cache can inflate to gigabytes, so every
decompression is bounded by ``limit`` and refuses trailing or missing data.
"""

from __future__ import annotations

import functools
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from cachekit.errors import ConfigurationError, SerializationError

from . import _optional
from .header import Compression

__all__ = [
    "CHOICES",
    "MAX_DECOMPRESSED_SIZE",
    "Compressor",
    "decompress",
    "make_compressor",
]

#: Accepted values of the ``compression`` option.
CHOICES: Final = ("auto", "zlib", "zstd", "none")
#: Default bound on a decompressed body (Redis itself caps a value at 512 MiB).
MAX_DECOMPRESSED_SIZE: Final = 128 * 1024 * 1024

# Accepted levels (the defaults are each library's: zlib 6, zstd 3). "auto" accepts only levels
# valid for both, so that one setting works whether or not zstandard is installed on a machine.
_LEVELS: Final = {"zlib": (0, 9), "zstd": (1, 22), "auto": (1, 9)}


@dataclass(frozen=True, slots=True)
class Compressor:
    """A chosen algorithm and level; ``compress`` is safe to call from any thread."""

    method: Compression
    level: int
    compress: Callable[[bytes], bytes]

    @property
    def name(self) -> str:
        return self.method.name.lower()


class _ZstdCompress:
    """One ``ZstdCompressor`` per thread: zstandard's contexts must not be shared."""

    def __init__(self, zstd: Any, level: int) -> None:
        self._zstd = zstd
        self._level = level
        self._local = threading.local()

    def __call__(self, data: bytes) -> bytes:
        try:
            cctx = self._local.cctx
        except AttributeError:
            cctx = self._local.cctx = self._zstd.ZstdCompressor(
                level=self._level, write_checksum=True, write_content_size=True
            )
        return cctx.compress(data)  # type: ignore[no-any-return]


def make_compressor(compression: object, level: int | None = None) -> Compressor | None:
    """Validate the ``compression``/``compress_level`` options; ``None`` means "never"."""
    if not isinstance(compression, str) or compression not in CHOICES:
        raise ConfigurationError(
            f"compression must be one of {', '.join(map(repr, CHOICES))}, got {compression!r}",
            key="compression",
        )
    if compression == "none":
        if level is not None:
            raise ConfigurationError(
                "compress_level has no effect with compression='none'", key="compress_level"
            )
        return None
    low, high = _LEVELS[compression]
    if level is not None and (type(level) is not int or not low <= level <= high):
        raise ConfigurationError(
            f"compress_level for compression={compression!r} must be an int from {low} to "
            f"{high} (or None for the default), got {level!r}",
            key="compress_level",
        )
    zstd = _optional.load("zstandard") if compression == "auto" else None
    if compression == "zstd":
        zstd = _optional.require("zstandard", key="compression", what="compression='zstd'")
    if zstd is not None:
        chosen = 3 if level is None else level
        return Compressor(Compression.ZSTD, chosen, _ZstdCompress(zstd, chosen))
    chosen = 6 if level is None else level
    return Compressor(Compression.ZLIB, chosen, functools.partial(zlib.compress, level=chosen))


def decompress(method: int, data: bytes, limit: int = MAX_DECOMPRESSED_SIZE) -> bytes:
    """Inflate a body, refusing output beyond ``limit`` bytes and corrupt or truncated input."""
    if method == Compression.ZLIB:
        return _inflate_zlib(data, limit)
    if method == Compression.ZSTD:
        return _inflate_zstd(data, limit)
    raise SerializationError(f"unknown compression method {method}")


def _inflate_zlib(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit)
    except zlib.error as exc:
        raise SerializationError(f"corrupt zlib body: {exc}") from exc
    if not inflater.eof:
        # Stopped at the limit with input or output still pending, or ran out of input.
        if inflater.unconsumed_tail or inflater.decompress(b"", 1):
            raise SerializationError(f"zlib body inflates beyond the {limit}-byte limit")
        raise SerializationError("truncated zlib body")
    if inflater.unused_data:
        raise SerializationError("trailing bytes after the zlib body")
    return out


_zstd_local = threading.local()


def _inflate_zstd(data: bytes, limit: int) -> bytes:
    zstd = _optional.load("zstandard")
    if zstd is None:
        raise _optional.missing("zstandard", "zstd-compressed")
    try:
        size = zstd.frame_content_size(data)
        if not 0 <= size <= limit:  # -1: unknown size, which cachekit never writes
            raise SerializationError(f"zstd body declares {size} bytes; the limit is {limit}")
        try:
            dctx = _zstd_local.dctx
        except AttributeError:
            dctx = _zstd_local.dctx = zstd.ZstdDecompressor()
        if size == 0:
            return _inflate_zstd_empty(dctx, data)
        return dctx.decompress(data, allow_extra_data=False)  # type: ignore[no-any-return]
    except zstd.ZstdError as exc:
        raise SerializationError(f"corrupt zstd body: {exc}") from exc


def _inflate_zstd_empty(dctx: Any, data: bytes) -> bytes:
    """A frame declaring size 0: ``ZstdDecompressor.decompress`` returns ``b""`` for it without
    decoding a block or checking the checksum, so one corrupted size byte would read back as an
    empty value. Decode it for real; libzstd refuses a block that outgrows the declared size
    (at most one 128 KiB block is produced before that)."""
    inflater = dctx.decompressobj()
    out = inflater.decompress(data)
    if out:
        raise SerializationError("zstd body is larger than its declared size 0")
    if not inflater.eof:
        raise SerializationError("truncated zstd body")
    if inflater.unused_data:
        raise SerializationError("trailing bytes after the zstd body")
    return b""


class _ZstdProbe:
    """zstd level 1 on a sample, per thread, no checksum: ~3 us for 512 random bytes where a
    level-3 frame with a checksum costs ~4-9 us, most of it fixed per call. Not a negative
    (fast) level: those skip entropy coding, and would take hex, base64 or digit strings,
    which compress only by it, for noise."""

    def __init__(self, zstd: Any) -> None:
        self._zstd = zstd
        self._local = threading.local()

    def __call__(self, data: bytes) -> int:
        try:
            cctx = self._local.cctx
        except AttributeError:
            cctx = self._local.cctx = self._zstd.ZstdCompressor(level=1)
        return len(cctx.compress(data))


# The byte-set pre-test (after the "byte core set" heuristic btrfs runs before compressing):
# take the set of byte values at every SET_STEP-th position of the sample's first SET_SPAN
# bytes, and see how many of those bytes are outside it. Random bytes (encrypted, compressed,
# media) leave ~58% (none of 20,000 random samples under 45%); JSON, hex, digits, text in any
# script leave 0-30% (uniformly random Cyrillic letters over 45% in 0.07% of samples), base64
# at most ~41%, base85 (the densest text encoding) over 45% in 0.25%: those few are stored
# uncompressed, no worse than with compression off. A sample
# whose last SET_REPEAT bytes occur earlier in it (repeated records, LZ's case) is never called
# noise. Samples that leave less than SET_NOISE go on to the codec's probe (zstd sets up a
# frame and Huffman tables even for noise: ~2 us), so only noise-like data skips it.
#
# Why these sizes: on a write the pre-test is the only work compression adds for noise, and
# beside a memcached round trip its cost is set by how many C calls it makes, not by how many
# bytes they scan (the server, on the same CPU, leaves the caches cold between calls). Measured
# that way (client CPU per 10 KB memcached ``set``), a byte-set over 256 bytes costs ~0.7 us,
# over 512 bytes ~0.9 us, and a branch-free count over 512 (maketrans, two translates,
# adler32: no mispredicted branch per byte, but twice the calls) ~1.4 us.
SET_SPAN: Final = 256
SET_STEP: Final = 4
SET_NOISE: Final = 0.45
SET_REPEAT: Final = 16


def noise_like(sample: bytes) -> bool:
    """Whether ``sample``'s bytes look random by the byte-set pre-test (too short to tell:
    ``False``)."""
    size = len(sample)
    if size < SET_SPAN:
        return False
    head = sample[:SET_SPAN]
    return (
        len(head.translate(None, head[::SET_STEP])) >= SET_SPAN * SET_NOISE
        and sample.find(sample[-SET_REPEAT:], 0, size - SET_REPEAT) < 0
    )


def make_probe(compressor: Compressor) -> Callable[[bytes], int]:
    """The compressed size of a sample, as cheaply as the installed codecs allow: it only has
    to tell compressible data from noise, not to be the size the real compressor reaches.
    Callers run :func:`noise_like` first (inlined where it is hot) and skip the codec for
    noise-like samples."""
    if compressor.method == Compression.ZSTD:  # zstandard is loaded already
        codec: Callable[[bytes], int] = _ZstdProbe(
            _optional.require("zstandard", key="compression", what="zstd")
        )
    else:
        codec = lambda sample: len(compressor.compress(sample))  # noqa: E731 - zlib: ~30 us

    return codec
