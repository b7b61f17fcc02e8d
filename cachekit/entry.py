"""What tools show about one stored entry (``inspect`` commands, the gRPC service)."""

from __future__ import annotations

from dataclasses import dataclass

from .serialization.header import Codec, Compression

__all__ = ["EntryInfo", "describe_payload"]


@dataclass(frozen=True, slots=True)
class EntryInfo:
    """One entry as stored: what an operator needs to see without decoding it by hand.

    ``ttl`` is the remaining lifetime in seconds (``None``: never expires); ``size`` is the
    stored size in bytes (the memory provider's estimate when it stores objects, ``None`` when
    unknown); ``serializer``/``compression`` name what wrote the bytes (``None`` for objects
    held as they are); ``value_type`` is the type name of the decoded value.
    """

    key: str
    ttl: float | None
    size: int | None
    serializer: str | None
    compression: str | None
    value_type: str


def describe_payload(raw: bytes) -> tuple[str, str | None]:
    """``(serializer, compression)`` of a stored payload, read from its envelope alone."""
    if raw[:1] != b"\xc1" or len(raw) < 4:
        return "int", None  # header-less payloads are decimal integers (see header.py)
    try:
        codec = Codec(raw[2]).name.lower()
    except ValueError:
        codec = f"codec-0x{raw[2]:02x}"
    method = raw[3] & 0x03
    try:
        compression = Compression(method).name.lower()
    except ValueError:
        compression = f"compression-{method}"
    return codec, None if method == Compression.NONE else compression
