"""Regressions from a review of serialization: a zstd frame declaring size 0, the stdlib JSON
reader's divergences from orjson's, and ``secret`` values the providers and signing refused
differently."""

from __future__ import annotations

from typing import Any

import pytest

from cachekit import create_cache
from cachekit.errors import ConfigurationError, SerializationError
from cachekit.providers.redis import RedisCache
from cachekit.serialization import JsonSerializer, make_serializer
from cachekit.serialization.compression import decompress
from cachekit.serialization.header import Compression, pack_header
from cachekit.testing.servers import RedisServer

zstd = pytest.importorskip("zstandard")
pytest.importorskip("orjson")

SECRET = "0123456789abcdef-secret"

# -- zstd: a frame header declaring content size 0 ------------------------------------------------


def _frame_header(frame: bytes) -> tuple[int, int]:
    """Offset and width of a zstd frame's content-size field (RFC 8878, 3.1.1.1)."""
    descriptor = frame[4]
    single_segment = descriptor >> 5 & 1
    width = (single_segment, 2, 4, 8)[descriptor >> 6]
    return 5 + (0 if single_segment else 1), width


def _zero_content_size(frame: bytes) -> bytes:
    offset, width = _frame_header(frame)
    assert width in (1, 4, 8), "a 2-byte field stores size - 256: it cannot say 0"
    return frame[:offset] + bytes(width) + frame[offset + width :]


@pytest.mark.parametrize("value", [b"hello world" * 10, "hello world" * 10])
def test_one_corrupted_size_byte_is_an_error_not_an_empty_value(value: Any) -> None:
    serializer = make_serializer("pickle", compression="zstd", compress_threshold=0)
    data = serializer.dumps(value)
    header = 4  # RAW or STR codec, unsigned, no extras
    assert data[header : header + 4] == b"\x28\xb5\x2f\xfd"
    corrupted = data[:header] + _zero_content_size(data[header:])
    with pytest.raises(SerializationError):
        serializer.loads(corrupted)


def test_a_multi_block_frame_declaring_size_0_is_refused() -> None:
    frame = zstd.ZstdCompressor(write_checksum=True, write_content_size=True).compress(
        bytes(range(100)) * 30_000
    )
    corrupted = _zero_content_size(frame)
    assert zstd.frame_content_size(corrupted) == 0
    with pytest.raises(SerializationError):
        decompress(Compression.ZSTD, corrupted)


def test_an_empty_zstd_frame_is_read_whole() -> None:
    empty = zstd.ZstdCompressor(write_checksum=True, write_content_size=True).compress(b"")
    assert zstd.frame_content_size(empty) == 0
    assert decompress(Compression.ZSTD, empty) == b""
    for bad in (empty[:-1], empty[:-4], empty + b"\x00", empty + empty):
        with pytest.raises(SerializationError):
            decompress(Compression.ZSTD, bad)


# -- JSON: the stdlib reader refuses what orjson's refuses -----------------------------------------

READERS = {
    "orjson": JsonSerializer(use_orjson=True),
    "stdlib": JsonSerializer(use_orjson=False),
}


@pytest.fixture(params=sorted(READERS))
def reader(request: pytest.FixtureRequest) -> JsonSerializer:
    return READERS[request.param]


@pytest.mark.parametrize(
    "body",
    [
        b"1e400",
        b"[-1e400]",
        b'{"a":2e308}',
        b"1" + b"0" * 400 + b".5",
        b'"\\ud800"',
        b'"\\uDC00"',
        b'["x\\ud83dy"]',
        b'"\\ude00\\ud83d"',
        b'{"\\ud83d":1}',
    ],
)
def test_foreign_payloads_both_readers_refuse(reader: JsonSerializer, body: bytes) -> None:
    with pytest.raises(SerializationError):
        reader.loads(pack_header(3) + body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'"\\ud83d\\ude00"', "\U0001f600"),
        (b'"\\uD83D\\uDE00"', "\U0001f600"),
        (b'["\\\\ud800"]', ["\\ud800"]),  # an escaped backslash, not an escape
        (b"[1.5e308,1e-400,-0.0]", [1.5e308, 0.0, -0.0]),
    ],
)
def test_both_readers_still_read_these(reader: JsonSerializer, body: bytes, expected: Any) -> None:
    assert reader.loads(pack_header(3) + body) == expected


# -- secret: bytes everywhere, lone surrogates as ConfigurationError -------------------------------


def test_redis_accepts_a_bytes_secret(redis_server: RedisServer) -> None:
    secret = b"\x00\xff" * 10
    writer = create_cache(redis_server.url, secret=secret, prefix="s11-bytes-secret:")
    by_dict = RedisCache(redis_server.url, prefix="s11-bytes-secret:", secret=secret)
    unsigned = RedisCache(redis_server.url, prefix="s11-bytes-secret:")
    try:
        writer.set("k", {"v": 1})
        assert by_dict.get("k") == {"v": 1}
        with pytest.raises(SerializationError):
            unsigned.get("k")  # signed: readers without the secret refuse it
    finally:
        writer.delete("k")
        for cache in (writer, by_dict, unsigned):
            cache.close()


@pytest.mark.parametrize("secret", [b"short", "short", 16, None])
def test_redis_refuses_unusable_secrets_up_front(secret: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        create_cache("redis://127.0.0.1:1/0", secret=secret)
    assert info.value.key == "secret"


def test_a_lone_surrogate_secret_is_a_configuration_error() -> None:
    secret = "\ud800" * 16
    with pytest.raises(ConfigurationError) as info:
        make_serializer("pickle", secret=secret)
    assert info.value.key == "secret"
    assert secret not in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        create_cache("redis://127.0.0.1:1/0", secret=secret)
    assert info.value.key == "secret"


def test_the_grpc_client_takes_a_bytes_secret_as_every_provider_does() -> None:
    """Second-reading finding: GrpcCache's secret option accepted only str."""
    from cachekit import create_cache

    cache = create_cache("grpc://127.0.0.1:1/ns", secret=b"0123456789abcdef0123")
    cache.close()
    with pytest.raises(ConfigurationError) as info:
        create_cache("grpc://127.0.0.1:1/ns", secret="short")
    assert info.value.key == "secret"
