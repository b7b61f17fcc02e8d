"""Serializers: round trips, the envelope, the integer rule, compression, signing and trust.

Real libraries throughout. Where a test needs an optional driver to look absent it replaces
``cachekit.serialization._optional.load``, the one function every optional import goes through.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
import hashlib
import hmac
import json as stdlib_json
import math
import os
import subprocess
import sys
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachekit.errors import CacheError, ConfigurationError, SerializationError
from cachekit.serialization import (
    SERIALIZERS,
    Codec,
    CodecSerializer,
    Compression,
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
    ProtobufSerializer,
    Reader,
    Serializer,
    _optional,
    compression,
    header,
    loads_any,
    make_serializer,
    parse_header,
    signing,
)
from cachekit.serialization import json as json_codec

SECRET = b"0123456789abcdef-test-secret"
OTHER_SECRET = b"fedcba9876543210-test-secret"
NAMES = ("json", "pickle", "msgpack", "protobuf")
COMPRESSIONS = ("auto", "zlib", "zstd", "none")
HYPOTHESIS = settings(
    database=None,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)


def hide(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make optional drivers look uninstalled to cachekit (not to the interpreter)."""
    real = _optional.load
    monkeypatch.setattr(_optional, "load", lambda name: None if name in names else real(name))


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


# -- hypothesis strategies --------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)
hashables = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.complex_numbers(allow_nan=False)
    | st.dates()
)
picklable_values = st.recursive(
    hashables,
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.dictionaries(hashables, children, max_size=5)
        | st.frozensets(hashables, max_size=5)
        | st.sets(hashables, max_size=5)
    ),
    max_leaves=25,
)
msgpack_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
msgpack_values = st.recursive(
    msgpack_scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=8) | st.integers(-1000, 1000), children, max_size=5)
    ),
    max_leaves=25,
)

# Serializers built once for the hypothesis tests (fixtures do not mix with @given).
FORCED: dict[str, Any] = {c: {"compression": c, "compress_threshold": 0} for c in COMPRESSIONS}
JSON_ORJSON = {c: JsonSerializer(use_orjson=True, **FORCED[c]) for c in COMPRESSIONS}
JSON_STDLIB = {c: JsonSerializer(use_orjson=False, **FORCED[c]) for c in COMPRESSIONS}
PICKLES = {
    (c, signed): PickleSerializer(secret=SECRET if signed else None, **FORCED[c])
    for c in COMPRESSIONS
    for signed in (False, True)
}
MSGPACKS = {c: MsgpackSerializer(**FORCED[c]) for c in COMPRESSIONS}


# -- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("comp", COMPRESSIONS)
@HYPOTHESIS
@given(value=json_values)
def test_json_round_trip_on_both_paths(comp: str, value: Any) -> None:
    fast, reference = JSON_ORJSON[comp], JSON_STDLIB[comp]
    assert fast.uses_orjson
    assert not reference.uses_orjson
    for writer in (fast, reference):
        data = writer.dumps(value)
        assert fast.loads(data) == value
        assert reference.loads(data) == value


def _typed(value: Any) -> Any:
    """``value`` with every leaf tagged by its type, so 1 and 1.0 (or 0.0 and -0.0) differ."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_typed(item) for item in value]
    return (type(value).__name__, repr(value))


@HYPOTHESIS
@given(value=json_values)
def test_json_paths_agree_on_values_and_types(value: Any) -> None:
    # The text may differ in how a float is spelled (orjson writes 1e-05 as 0.00001), nothing else.
    expected = _typed(value)
    for writer in (JSON_ORJSON["none"], JSON_STDLIB["none"]):
        data = writer.dumps(value)
        if data[:1] == b"\xc1" and data[2] == Codec.JSON:  # not a bare int, not a plain str
            assert _typed(stdlib_json.loads(data[4:])) == expected
        for reader in (JSON_ORJSON["none"], JSON_STDLIB["none"]):
            assert _typed(reader.loads(data)) == expected


@pytest.mark.parametrize("comp", COMPRESSIONS)
@pytest.mark.parametrize("signed", [False, True])
@HYPOTHESIS
@given(value=picklable_values)
def test_pickle_round_trip(comp: str, signed: bool, value: Any) -> None:
    serializer = PICKLES[comp, signed]
    result = serializer.loads(serializer.dumps(value))
    assert result == value
    assert type(result) is type(value)


@pytest.mark.parametrize("comp", COMPRESSIONS)
@HYPOTHESIS
@given(value=msgpack_values)
def test_msgpack_round_trip(comp: str, value: Any) -> None:
    assert MSGPACKS[comp].loads(MSGPACKS[comp].dumps(value)) == value


NESTED = {"users": [{"id": 1, "name": "ada", "tags": ["x", "y"], "score": 2.5, "ok": None}]}
COMMON_VALUES = [
    None,
    True,
    False,
    0,
    -7,
    42,
    2**80,
    1.5,
    -0.0,
    "",
    "héllo ✓",
    b"",
    b"\x00\xc1",
    NESTED,
]


@pytest.mark.parametrize("name", ["json", "pickle", "msgpack"])
@pytest.mark.parametrize("comp", COMPRESSIONS)
@pytest.mark.parametrize("value", COMMON_VALUES, ids=repr)
def test_common_values_round_trip(name: str, comp: str, value: Any) -> None:
    serializer = make_serializer(name, compression=comp, compress_threshold=0)
    result = serializer.loads(serializer.dumps(value))
    assert result == value
    assert type(result) is type(value)


@pytest.mark.parametrize("name", NAMES)
def test_every_serializer_stores_int_str_bytes_natively(name: str) -> None:
    serializer = make_serializer(name, compression="none")
    assert serializer.dumps(42) == b"42"
    assert serializer.dumps("é") == b"\xc1\x01\x02\x00" + "é".encode()
    assert serializer.dumps(b"\xc1") == b"\xc1\x01\x01\x00\xc1"
    assert serializer.loads(serializer.dumps(b"\xc1")) == b"\xc1"


class Color(enum.IntEnum):
    RED = 1


def test_pickle_keeps_types_json_normalises() -> None:
    value = {"t": (1, 2), "s": {3}, "e": Color.RED}
    assert make_serializer("pickle").loads(make_serializer("pickle").dumps(value)) == value
    json_ser = make_serializer("json")
    assert json_ser.loads(json_ser.dumps({"t": (1, 2), "e": Color.RED})) == {"t": [1, 2], "e": 1}
    with pytest.raises(SerializationError, match="cannot encode set"):
        json_ser.dumps({3})


def test_lone_surrogates_fall_back_to_the_codec() -> None:
    text = "a\ud800b"
    pickle_ser = make_serializer("pickle")
    data = pickle_ser.dumps(text)
    assert parse_header(data).codec == Codec.PICKLE
    assert pickle_ser.loads(data) == text
    for serializer in (JSON_ORJSON["none"], JSON_STDLIB["none"], MSGPACKS["none"]):
        with pytest.raises(SerializationError):
            serializer.dumps(text)


# -- the integer rule ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [0, 1, -7, 42, 2**63 - 1, -(2**63), 10**40])
def test_int_is_bare_ascii_decimal(name: str, value: int) -> None:
    serializer = make_serializer(name, secret=SECRET)  # even signed serializers: INCR must work
    data = serializer.dumps(value)
    assert data == str(value).encode("ascii")
    assert serializer.loads(data) == value
    assert type(serializer.loads(data)) is int


def test_server_side_increment_is_read_back() -> None:
    serializer = make_serializer("pickle")
    stored = serializer.dumps(41)
    incremented = str(int(stored) + 1).encode()  # what Redis INCR leaves behind
    assert serializer.loads(incremented) == 42
    assert serializer.loads(b"9   ") == 9  # memcached decr may pad a shorter number with spaces


@pytest.mark.parametrize("name", ["json", "pickle", "msgpack"])
@pytest.mark.parametrize("value", [True, False])
def test_bool_is_not_stored_as_int(name: str, value: bool) -> None:
    serializer = make_serializer(name)
    data = serializer.dumps(value)
    assert data[0] == header.MAGIC
    assert data not in (b"0", b"1")
    assert serializer.loads(data) is value


def test_int_subclass_is_not_stored_as_int() -> None:
    serializer = make_serializer("pickle")
    data = serializer.dumps(Color.RED)
    assert data[0] == header.MAGIC
    assert serializer.loads(data) is Color.RED


@pytest.mark.parametrize(
    "data", [b"", b"042", b"-0", b"+1", b" 1", b"1.5", b"1e3", b"abc", b"-", b"1_000", b"\x80\x05"]
)
def test_headerless_non_integer_is_rejected(data: bytes) -> None:
    with pytest.raises(SerializationError, match="not a decimal integer"):
        make_serializer("pickle").loads(data)


def test_integers_beyond_the_str_digit_limit() -> None:
    serializer = make_serializer("pickle")
    with pytest.raises(SerializationError, match="integer too large"):
        serializer.dumps(10**5000)
    with pytest.raises(SerializationError, match="integer payload rejected"):
        serializer.loads(b"1" * 5000)


# -- the envelope -------------------------------------------------------------------------------


def test_exact_header_bytes() -> None:
    assert JsonSerializer(compression="none").dumps([1]) == b"\xc1\x01\x03\x00[1]"
    assert JsonSerializer(compression="none", secret=SECRET).dumps([1])[:4] == b"\xc1\x01\x03\x08"
    assert header.pack_header(Codec.PROTOBUF, Compression.ZSTD, signed=True, extras=b"a.B") == (
        b"\xc1\x01\x06\x0e\x00\x03a.B"
    )


def test_documented_test_vectors() -> None:
    # The vectors of docs/serialization.md, which implementations in other languages rely on.
    from google.protobuf import timestamp_pb2

    plain = JsonSerializer(compression="none")
    assert plain.dumps({"a": 1}) == bytes.fromhex("c1 01 03 00 7b 22 61 22 3a 31 7d")
    assert plain.dumps("hé") == bytes.fromhex("c1 01 02 00 68 c3 a9")
    assert plain.dumps(b"\x00\xff") == bytes.fromhex("c1 01 01 00 00 ff")
    stamp = ProtobufSerializer(compression="none").dumps(timestamp_pb2.Timestamp(seconds=1))
    assert stamp == bytes.fromhex(
        "c1 01 06 04 00 19 67 6f 6f 67 6c 65 2e 70 72 6f 74 6f 62"
        "75 66 2e 54 69 6d 65 73 74 61 6d 70 08 01"
    )
    signed = JsonSerializer(compression="none", secret=b"cachekit-test-vector-secret")
    vector = bytes.fromhex(
        "c1 01 03 08 7b 22 61 22 3a 31 7d"
        "1e 3e 35 33 a6 11 7d 6a 8e 05 6b 78 b5 f5 97 4c 21 fd 9c 6f 90 ea 9d 07 f3 ec a2 3f ce 8d"
        "3e d3"
    )
    assert signed.dumps({"a": 1}) == vector
    assert signing.derive_key(b"cachekit-test-vector-secret") == bytes.fromhex(
        "f1b5744e0dac988dd1c966b6dfb8c4465c00b03357a5d2977d43758814baba7b"
    )
    # zlib's exact output may vary between zlib builds (zlib-ng): check that it reads back.
    deflated = bytes.fromhex("c1 01 03 01 78 9c 8b 56 aa 20 12 28 c5 02 00 bc 16 13 bd")
    assert plain.loads(deflated) == ["x" * 40]


def test_magic_is_neither_ascii_nor_utf8() -> None:
    assert header.MAGIC >= 0x80
    with pytest.raises(UnicodeDecodeError):
        bytes([header.MAGIC]).decode("utf-8")


def test_parse_header() -> None:
    data = make_serializer("json", compression="zlib", compress_threshold=0, secret=SECRET).dumps(
        {"k": "v" * 500}
    )
    parsed = parse_header(data)
    assert parsed == header.Header(Codec.JSON, Compression.ZLIB, True, b"", 4)
    assert len(data) - signing.TAG_SIZE > parsed.body_offset


def test_pack_header_rejects_huge_extras() -> None:
    with pytest.raises(SerializationError, match="limited to 65535"):
        header.pack_header(Codec.PROTOBUF, extras=b"x" * 70_000)


CORRUPT_HEADERS = [
    (b"\xc1", "truncated header"),
    (b"\xc1\x01\x03", "truncated header"),
    (b"\xc1\x02\x03\x00[]", "unsupported format version 2"),
    (b"\xc1\x01\x03\x10[]", "unknown flags 0x10"),
    (b"\xc1\x01\x03\x03[]", "unknown flags 0x03"),
    (b"\xc1\x01\x06\x04\x00", "truncated header extras"),
    (b"\xc1\x01\x06\x04\x00\x09abc", "truncated header extras"),
]


@pytest.mark.parametrize(("data", "message"), CORRUPT_HEADERS)
def test_corrupt_headers_are_rejected(data: bytes, message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        make_serializer("json").loads(data)
    with pytest.raises(SerializationError, match=message):
        parse_header(data)


def test_parse_header_errors() -> None:
    with pytest.raises(SerializationError, match="no cachekit header"):
        parse_header(b"42")
    with pytest.raises(SerializationError, match="shorter than its signature"):
        parse_header(b"\xc1\x01\x03\x08" + b"x" * 10)


@pytest.mark.parametrize("codec", [0x00, 0x07, 0x80, 0xFF])
def test_unknown_codec_id(codec: int) -> None:
    with pytest.raises(SerializationError, match=f"unknown codec id 0x{codec:02x}"):
        loads_any(bytes([0xC1, 0x01, codec, 0x00]) + b"body")


def test_corrupt_bodies() -> None:
    serializer = make_serializer("pickle")
    with pytest.raises(SerializationError, match="corrupt str payload"):
        serializer.loads(b"\xc1\x01\x02\x00\xff")
    with pytest.raises(SerializationError, match="corrupt JSON payload"):
        serializer.loads(b"\xc1\x01\x03\x00{")
    with pytest.raises(SerializationError, match="cannot unpickle"):
        serializer.loads(b"\xc1\x01\x04\x00\x80\x05garbage")
    with pytest.raises(SerializationError, match="corrupt msgpack payload"):
        serializer.loads(b"\xc1\x01\x05\x00\x92\x01")


def _big_value(name: str) -> Any:
    if name != "protobuf":
        return {"k": list(range(300))}
    from google.protobuf import struct_pb2

    struct = struct_pb2.Struct()
    struct.update({"k": list(range(300))})
    return struct


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("comp", ["none", "zlib", "zstd"])
def test_truncated_payloads_never_decode_silently(name: str, comp: str) -> None:
    serializer = make_serializer(name, compression=comp, compress_threshold=0)
    value = _big_value(name)
    data = serializer.dumps(value)
    for cut in (1, 2, 3, 5, len(data) // 2, len(data) - 1):
        try:
            result = serializer.loads(data[:cut])
        except SerializationError:
            continue
        assert result != value


# -- compression --------------------------------------------------------------------------------

LARGE = {"rows": [{"id": i, "name": "row"} for i in range(200)]}


@pytest.mark.parametrize(("comp", "method"), [("zlib", 1), ("zstd", 2), ("auto", 2)])
def test_large_values_are_compressed(comp: str, method: int) -> None:
    serializer = make_serializer("json", compression=comp)
    data = serializer.dumps(LARGE)
    assert parse_header(data).compression == method
    assert len(data) < len(stdlib_json.dumps(LARGE)) // 4
    assert serializer.loads(data) == LARGE


def test_small_values_and_none_are_not_compressed() -> None:
    assert parse_header(make_serializer("json").dumps({"a": 1})).compression == 0
    assert parse_header(make_serializer("json", compression="none").dumps(LARGE)).compression == 0


def test_threshold_is_inclusive() -> None:
    body = b"a" * 100
    at = make_serializer("pickle", compression="zlib", compress_threshold=100)
    above = make_serializer("pickle", compression="zlib", compress_threshold=101)
    assert parse_header(at.dumps(body)).compression == Compression.ZLIB
    assert parse_header(above.dumps(body)).compression == Compression.NONE


PART_VALUES = [
    b"",
    b"x" * 99,
    b"ab" * 600,  # compressible, over the threshold, under the probe size
    b"<p>row</p>" * 1000,  # compressible, probed
    os.urandom(1023),
    os.urandom(1024),
    os.urandom(10_000),  # noise: stored as it is
    os.urandom(300) * 20,  # noise-like head, repeats further on: the probe decides
    "text" * 500,
    7,
    {"rows": [1, 2, 3]},
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("comp", COMPRESSIONS)
@pytest.mark.parametrize("secret", [None, SECRET])
def test_dumps_parts_join_to_dumps(name: str, comp: str, secret: bytes | None) -> None:
    """The split form writers gather (memcached's) is byte for byte what ``dumps`` returns."""
    serializer = make_serializer(name, compression=comp, secret=secret)
    for value in PART_VALUES:
        try:
            whole = serializer.dumps(value)
        except SerializationError:  # protobuf and dicts: refused the same way
            with pytest.raises(SerializationError):
                serializer.dumps_parts(value)
            continue
        head, body = serializer.dumps_parts(value)
        assert head + body == whole
        if type(value) is bytes and secret is None and len(value) >= 1024:
            # the body goes out as the caller's object, or as the smaller compressed form
            assert body is value or len(body) < len(value)


def test_dumps_parts_never_bypasses_a_subclass_dumps() -> None:
    """Review finding: splitting bytes past an overridden ``dumps`` stored what that ``dumps``
    would not have written (here, without its version prefix)."""

    class Versioned(PickleSerializer):
        def dumps(self, value: Any) -> bytes:
            return b"V2" + super().dumps(value)

    serializer = Versioned(compression="none")
    assert b"".join(serializer.dumps_parts(b"abc" * 2000)) == serializer.dumps(b"abc" * 2000)
    assert ProtobufSerializer(compression="none").dumps_parts(b"x" * 99)[1] == b"x" * 99  # split


def test_dumps_parts_default_for_other_serializers() -> None:
    class Upper(Serializer):
        name = "upper"

        def dumps(self, value: Any) -> bytes:
            return str(value).upper().encode()

        def loads(self, data: bytes) -> Any:
            return data.decode()

    assert Upper().dumps_parts("abc") == (b"", b"ABC")


@pytest.mark.parametrize("comp", ["zlib", "zstd"])
def test_compression_kept_only_when_smaller(comp: str) -> None:
    noise = os.urandom(4096)
    serializer = make_serializer("pickle", compression=comp, compress_threshold=0)
    data = serializer.dumps(noise)
    assert parse_header(data).compression == Compression.NONE
    assert data == b"\xc1\x01\x01\x00" + noise


def test_auto_falls_back_to_zlib_without_zstandard(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "zstandard")
    serializer = make_serializer("json")
    assert serializer.compression == "zlib"
    assert parse_header(serializer.dumps(LARGE)).compression == Compression.ZLIB


def test_zstd_without_zstandard(monkeypatch: pytest.MonkeyPatch) -> None:
    zstd_payload = make_serializer("json", compression="zstd").dumps(LARGE)
    hide(monkeypatch, "zstandard")
    with pytest.raises(ConfigurationError, match=r"cachekit\[fast\]") as info:
        make_serializer("json", compression="zstd")
    assert info.value.key == "compression"
    with pytest.raises(SerializationError, match=r"'zstandard'.*cachekit\[fast\]"):
        make_serializer("json").loads(zstd_payload)


@pytest.mark.parametrize(
    ("comp", "level", "expected"),
    [
        ("zlib", None, 6),
        ("zlib", 9, 9),
        ("zstd", None, 3),
        ("zstd", 19, 19),
        ("auto", 5, 5),
        ("none", None, None),
    ],
)
def test_levels(comp: str, level: int | None, expected: int | None) -> None:
    serializer = make_serializer("json", compression=comp, compress_level=level)
    assert serializer.compress_level == expected
    assert serializer.loads(serializer.dumps(LARGE)) == LARGE


@pytest.mark.parametrize("comp", ["zlib", "zstd"])
def test_decompression_is_bounded(comp: str) -> None:
    bomb = make_serializer("pickle", compression=comp).dumps(b"\0" * 1_000_000)
    assert len(bomb) < 5_000
    small = PickleSerializer(max_decompressed_size=100_000)
    with pytest.raises(SerializationError, match="limit"):
        small.loads(bomb)
    assert PickleSerializer(max_decompressed_size=1_000_000).loads(bomb) == b"\0" * 1_000_000


def _compressed(method: int, body: bytes) -> bytes:
    return header.pack_header(Codec.RAW, method) + body


def test_corrupt_compressed_bodies() -> None:
    import zstandard

    good_zlib = zlib.compress(b"a" * 5000)
    good_zstd = zstandard.ZstdCompressor().compress(b"a" * 5000)
    unknown_size = zstandard.ZstdCompressor(write_content_size=False).compress(b"a" * 5000)
    cases = [
        (_compressed(1, b"not zlib"), "corrupt zlib"),
        (_compressed(1, good_zlib[:-5]), "truncated zlib"),
        (_compressed(1, good_zlib + b"junk"), "trailing bytes"),
        (_compressed(2, b"not zstd"), "corrupt zstd"),
        (_compressed(2, good_zstd[:-3]), "corrupt zstd"),
        (_compressed(2, good_zstd + b"junk"), "corrupt zstd"),
        (_compressed(2, unknown_size), "declares -1 bytes"),
    ]
    for data, message in cases:
        with pytest.raises(SerializationError, match=message):
            loads_any(data)
    assert loads_any(_compressed(1, good_zlib)) == b"a" * 5000
    with pytest.raises(SerializationError, match="unknown compression method 3"):
        compression.decompress(3, b"")


def test_zstd_compression_is_thread_safe() -> None:
    serializer = make_serializer("pickle", compression="zstd")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                value = [n, i, "x" * (1000 + n * 37 + i)]
                assert serializer.loads(serializer.dumps(value)) == value
        except BaseException as exc:  # collected and re-raised by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# -- signing and the trust rules ------------------------------------------------------------------

EXECUTED: list[str] = []


def _record(marker: str) -> str:
    EXECUTED.append(marker)
    return marker


class Exploit:
    """Unpickling this calls _record: the stand-in for an attacker's os.system."""

    def __reduce__(self) -> tuple[Callable[[str], str], tuple[str]]:
        return (_record, ("pwned",))


@pytest.fixture
def executed() -> Iterator[list[str]]:
    EXECUTED.clear()
    yield EXECUTED
    EXECUTED.clear()


def test_exploit_runs_when_trusted(executed: list[str]) -> None:
    # The control experiment: the payload is live, so the refusals below are meaningful.
    trusting = PickleSerializer()
    assert trusting.loads(trusting.dumps(Exploit())) == "pwned"
    assert executed == ["pwned"]


def test_signed_payload_layout_matches_the_documented_algorithm() -> None:
    data = PickleSerializer(secret=SECRET, compression="none").dumps([1, 2])
    key = hmac.new(SECRET, b"cachekit.serialization.v1", hashlib.sha256).digest()
    assert data[:4] == b"\xc1\x01\x04\x08"
    assert data[-32:] == hmac.new(key, data[:-32], hashlib.sha256).digest()
    assert signing.verify(signing.derive_key(SECRET), data)
    assert signing.sign(signing.derive_key(SECRET), data[:-32]) == data
    assert not signing.verify(signing.derive_key(SECRET), data[:10])


def test_str_and_bytes_secrets_are_equivalent() -> None:
    data = PickleSerializer(secret=SECRET.decode()).dumps({"a": 1})
    assert PickleSerializer(secret=SECRET).loads(data) == {"a": 1}


@pytest.mark.parametrize("comp", ["none", "zlib"])
def test_tampering_is_detected_and_nothing_is_unpickled(comp: str, executed: list[str]) -> None:
    reader = PickleSerializer(secret=SECRET, compression=comp, compress_threshold=0)
    data = reader.dumps({"payload": "x" * 300})
    evil = pickle_bytes(Exploit())
    attacks = {
        "flipped body byte": flip(data, 10),
        "flipped signature byte": flip(data, len(data) - 1),
        "flipped flags byte": flip(data, 3),
        "evil body, old tag": data[:4] + evil + data[-32:],
        "signature stripped": bytes([*data[:3], data[3] & ~header.FLAG_SIGNED]) + data[4:-32],
        "tag cut off, flag kept": data[:-32],
        "shorter than a tag": data[:20],
        "unsigned exploit": header.pack_header(Codec.PICKLE) + evil,
        "signed with another secret": PickleSerializer(secret=OTHER_SECRET).dumps(Exploit()),
    }
    for attack, payload in attacks.items():
        with pytest.raises(SerializationError):
            reader.loads(payload)
        assert executed == [], attack


def pickle_bytes(value: Any) -> bytes:
    return PickleSerializer(compression="none").dumps(value)[4:]


def test_signed_payload_needs_a_secret() -> None:
    data = PickleSerializer(secret=SECRET).dumps([1])
    with pytest.raises(SerializationError, match="no secret"):
        PickleSerializer().loads(data)
    with pytest.raises(SerializationError, match="no secret"):
        loads_any(data, allow_pickle=True)
    assert loads_any(data, secret=SECRET, allow_pickle=True) == [1]


def test_secret_readers_refuse_unsigned_payloads_of_every_codec() -> None:
    reader = JsonSerializer(secret=SECRET)
    for payload in (JsonSerializer().dumps([1]), JsonSerializer().dumps("s")):
        with pytest.raises(SerializationError, match="unsigned payload refused"):
            reader.loads(payload)
    assert reader.loads(reader.dumps([1])) == [1]
    assert reader.loads(b"7") == 7  # integers stay unsigned


def test_only_pickle_serializers_unpickle(executed: list[str]) -> None:
    payload = PickleSerializer().dumps(Exploit())
    for reader in (JsonSerializer(), MsgpackSerializer(), ProtobufSerializer(), Reader()):
        with pytest.raises(SerializationError, match="pickle payload refused"):
            reader.loads(payload)
    with pytest.raises(SerializationError, match="pickle payload refused"):
        loads_any(payload)
    signed = PickleSerializer(secret=SECRET).dumps(Exploit())
    with pytest.raises(SerializationError, match="pickle payload refused"):
        JsonSerializer(secret=SECRET).loads(signed)
    assert executed == []
    assert loads_any(payload, allow_pickle=True) == "pwned"


def test_unpicklable_values() -> None:
    serializer = make_serializer("pickle")
    with pytest.raises(SerializationError, match="cannot encode function"):
        serializer.dumps(lambda: None)
    with pytest.raises(SerializationError, match="cannot encode lock"):
        serializer.dumps(threading.Lock())


# -- JSON: one semantics on both paths ------------------------------------------------------------


class Plain(enum.Enum):
    PAIR = (1, 2)


class Text(str):
    pass


class Real(float):
    pass


Point = collections.namedtuple("Point", "x y")


@dataclasses.dataclass
class Record:
    x: int = 1


CYCLE: list[Any] = []
CYCLE.append(CYCLE)
UID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


JSON_CASES: list[tuple[str, Any, Any]] = [
    ("nan becomes null", [math.nan, 1.0], [None, 1.0]),
    ("infinity becomes null", {"x": -math.inf}, {"x": None}),
    ("enum by value", Plain.PAIR, [1, 2]),
    ("uuid as string", UID, str(UID)),
    ("scalar keys as strings", {1: "a", 2.5: "b", None: "c"}, {"1": "a", "2.5": "b", "null": "c"}),
    ("str subclass key", {Text("k"): Real(1.5)}, {"k": 1.5}),
    ("namedtuple as list", Point(1, 2), [1, 2]),
    ("largest unsigned 64-bit", 2**64 - 1, 2**64 - 1),
    ("smallest signed 64-bit", [-(2**63)], [-(2**63)]),
    ("19-digit ints", [1234567890123456789], [1234567890123456789]),
    ("deep nesting", _nested(300), _nested(300)),
]
JSON_ERRORS: list[tuple[str, Any]] = [
    ("beyond 64 bits", [2**64]),
    ("below -2**63", {"n": -(2**63) - 1}),
    ("big int inside an enum", {"e": enum.Enum("Big", {"V": 2**70}).V}),
    ("datetime", datetime.datetime(2024, 1, 1)),
    ("date", [datetime.date(2024, 1, 1)]),
    ("dataclass", Record()),
    ("set", {1}),
    ("bytes inside", [b"x"]),
    ("object key", {(1, 2): 3}),
    ("circular", CYCLE),
    ("circular with nan", [math.nan, CYCLE]),
    ("too deep", _nested(100_000)),  # past every version's C recursion limit (3.12+: ~8000)
]


@pytest.mark.parametrize(("case", "value", "expected"), JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_json_edge_cases_agree(case: str, value: Any, expected: Any) -> None:
    fast, reference = JSON_ORJSON["none"], JSON_STDLIB["none"]
    data = fast.dumps(value)
    assert data == reference.dumps(value), case
    assert fast.loads(data) == expected
    assert reference.loads(data) == expected


@pytest.mark.parametrize(("case", "value"), JSON_ERRORS, ids=[c[0] for c in JSON_ERRORS])
def test_json_refusals_agree(case: str, value: Any) -> None:
    for serializer in (JSON_ORJSON["none"], JSON_STDLIB["none"]):
        with pytest.raises(SerializationError, match="json serializer cannot encode"):
            serializer.dumps(value)


@pytest.mark.parametrize("body", [b"NaN", b"[Infinity]", b"\xff", b"[1", b"1 2", b'{"a":}'])
def test_json_readers_reject_the_same_bodies(body: bytes) -> None:
    data = b"\xc1\x01\x03\x00" + body
    for serializer in (JSON_ORJSON["none"], JSON_STDLIB["none"]):
        with pytest.raises(SerializationError, match="corrupt JSON"):
            serializer.loads(data)


def test_json_auto_uses_stdlib_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "orjson")
    serializer = JsonSerializer()
    assert not serializer.uses_orjson
    assert serializer.loads(serializer.dumps(NESTED)) == NESTED
    with pytest.raises(ConfigurationError, match=r"cachekit\[fast\]") as info:
        JsonSerializer(use_orjson=True)
    assert info.value.key == "use_orjson"


def test_json_module_uses_the_stdlib_json() -> None:
    # cachekit/serialization/json.py must not shadow the stdlib module it builds on.
    assert json_codec.json is stdlib_json
    assert json_codec.JsonSerializer is SERIALIZERS["json"]


def test_use_orjson_must_be_a_bool() -> None:
    with pytest.raises(ConfigurationError, match="use_orjson must be") as info:
        JsonSerializer(use_orjson="yes")
    assert info.value.key == "use_orjson"


# -- msgpack --------------------------------------------------------------------------------------


def test_msgpack_specifics() -> None:
    serializer = make_serializer("msgpack")
    assert serializer.loads(serializer.dumps({1: b"\x00", "t": (1, 2)})) == {
        1: b"\x00",
        "t": [1, 2],
    }
    with pytest.raises(SerializationError, match="cannot encode set"):
        serializer.dumps({1})
    with pytest.raises(SerializationError, match="cannot encode list"):
        serializer.dumps([2**64])
    with pytest.raises(SerializationError, match="corrupt msgpack"):
        serializer.loads(b"\xc1\x01\x05\x00\x81\x81\x01\x02\x03")  # a map as a map key
    # A list as a map key is how a tuple key is written: read back as a tuple.
    assert serializer.loads(b"\xc1\x01\x05\x00\x81\x91\x01\x02") == {(1,): 2}
    assert serializer.loads(serializer.dumps([1])) == [1]  # the failed pack left no residue


def test_msgpack_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    payload = make_serializer("msgpack").dumps([1, 2])
    hide(monkeypatch, "msgpack")
    with pytest.raises(ConfigurationError, match=r"'msgpack'.*cachekit\[fast\]") as info:
        make_serializer("msgpack")
    assert info.value.key == "serializer"
    with pytest.raises(SerializationError, match=r"'msgpack'.*cachekit\[fast\]"):
        make_serializer("json").loads(payload)


# -- protobuf -------------------------------------------------------------------------------------


def _private_message_class(*, required: bool = False) -> Any:
    """A message type in a private descriptor pool, so the default pool cannot resolve it."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(
        name="cachekit_test/private.proto",
        package="cachekit_test",
        syntax="proto2" if required else "proto3",
    )
    msg = fdp.message_type.add(name="Private")
    msg.field.add(
        name="note",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=(
            descriptor_pb2.FieldDescriptorProto.LABEL_REQUIRED
            if required
            else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
        ),
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("cachekit_test.Private"))


@pytest.mark.parametrize("comp", COMPRESSIONS)
@pytest.mark.parametrize("signed", [False, True])
def test_protobuf_round_trip(comp: str, signed: bool) -> None:
    from google.protobuf import struct_pb2, timestamp_pb2

    secret = SECRET if signed else None
    serializer = make_serializer("protobuf", compression=comp, compress_threshold=0, secret=secret)
    stamp = timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=5)
    data = serializer.dumps(stamp)
    assert parse_header(data).extras == b"google.protobuf.Timestamp"
    assert serializer.loads(data) == stamp
    assert serializer.dumps(stamp) == data  # the second time from the per-type header cache
    assert loads_any(data, secret=secret) == stamp
    struct = struct_pb2.Struct()
    struct.update({"name": "ada", "tags": ["x"] * 400, "nested": {"ok": True}})
    data = serializer.dumps(struct)
    assert type(serializer.loads(data)) is struct_pb2.Struct
    assert serializer.loads(data) == struct


def test_protobuf_header_layout() -> None:
    from google.protobuf import timestamp_pb2

    data = ProtobufSerializer(compression="none").dumps(timestamp_pb2.Timestamp(seconds=1))
    assert data == b"\xc1\x01\x06\x04\x00\x19google.protobuf.Timestamp\x08\x01"


def test_protobuf_registered_classes() -> None:
    private = _private_message_class()
    serializer = ProtobufSerializer(messages=[private])
    data = serializer.dumps(private(note="hi"))
    assert serializer.loads(data).note == "hi"
    with pytest.raises(SerializationError, match=r"unknown protobuf message type.*_pb2"):
        loads_any(data)
    with pytest.raises(ConfigurationError, match="protobuf message classes") as info:
        ProtobufSerializer(messages=[dict])
    assert info.value.key == "messages"


def test_protobuf_errors() -> None:
    serializer = ProtobufSerializer()
    with pytest.raises(SerializationError, match=r"stores protobuf messages.*got dict"):
        serializer.dumps({"a": 1})
    with pytest.raises(SerializationError, match="cannot encode Private"):
        serializer.dumps(_private_message_class(required=True)())
    no_name = header.pack_header(Codec.PROTOBUF) + b"\x08\x01"
    with pytest.raises(SerializationError, match="without a message type name"):
        serializer.loads(no_name)
    bad_name = header.pack_header(Codec.PROTOBUF, extras="é".encode()) + b""
    with pytest.raises(SerializationError, match="unknown protobuf message type"):
        serializer.loads(bad_name)
    corrupt = header.pack_header(Codec.PROTOBUF, extras=b"google.protobuf.Timestamp") + b"\xff\xff"
    with pytest.raises(SerializationError, match=r"corrupt google\.protobuf\.Timestamp"):
        serializer.loads(corrupt)


def test_protobuf_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from google.protobuf import timestamp_pb2

    payload = ProtobufSerializer().dumps(timestamp_pb2.Timestamp(seconds=1))
    hide(monkeypatch, "google.protobuf")
    with pytest.raises(ConfigurationError, match=r"'protobuf'.*cachekit\[grpc\]") as info:
        make_serializer("protobuf")
    assert info.value.key == "serializer"
    with pytest.raises(SerializationError, match=r"'protobuf'.*cachekit\[grpc\]"):
        make_serializer("json").loads(payload)


# -- every serializer reads every other's output ---------------------------------------------


def _sample_outputs() -> dict[str, bytes]:
    from google.protobuf import timestamp_pb2

    return {
        "json": make_serializer("json").dumps({"a": [1, 2]}),
        "msgpack": make_serializer("msgpack").dumps({"a": [1, 2]}),
        "protobuf": make_serializer("protobuf").dumps(timestamp_pb2.Timestamp(seconds=9)),
        "pickle": make_serializer("pickle").dumps({"a": [1, 2]}),
    }


@pytest.mark.parametrize("reader_name", NAMES)
@pytest.mark.parametrize("writer_name", NAMES)
def test_cross_codec_reading(reader_name: str, writer_name: str) -> None:
    data = _sample_outputs()[writer_name]
    reader = make_serializer(reader_name)
    if writer_name == "pickle" and reader_name != "pickle":
        with pytest.raises(SerializationError, match="pickle payload refused"):
            reader.loads(data)
        return
    assert reader.loads(data) == make_serializer(writer_name).loads(data)


# -- the factory, options and the registry contract ------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_make_serializer(name: str) -> None:
    serializer = make_serializer(name)
    assert isinstance(serializer, SERIALIZERS[name])
    assert serializer.name == name
    assert serializer.compression == "zstd"
    assert name in repr(serializer).lower()


def test_default_serializer_is_pickle() -> None:
    assert type(make_serializer()) is PickleSerializer


def test_interface_uniformity() -> None:
    assert set(SERIALIZERS) == set(NAMES)
    for name, cls in SERIALIZERS.items():
        assert issubclass(cls, Serializer)
        assert issubclass(cls, CodecSerializer)
        assert cls.name == name
        assert callable(cls.dumps)
        assert callable(cls.loads)
    assert len({cls.codec_id for cls in SERIALIZERS.values()}) == len(SERIALIZERS)


def test_lead_registry_paths_resolve() -> None:
    from cachekit.registry import serializer_registry as serializers

    for name in NAMES:
        assert serializers.get(name) is SERIALIZERS[name]


BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"name": "yaml"}, "serializer"),
    ({"name": None}, "serializer"),
    ({"compression": "gzip"}, "compression"),
    ({"compression": None}, "compression"),
    ({"compress_threshold": -1}, "compress_threshold"),
    ({"compress_threshold": "1024"}, "compress_threshold"),
    ({"compress_threshold": True}, "compress_threshold"),
    ({"compression": "zlib", "compress_level": 10}, "compress_level"),
    ({"compression": "zstd", "compress_level": 0}, "compress_level"),
    ({"compression": "zstd", "compress_level": 23}, "compress_level"),
    ({"compression": "auto", "compress_level": 12}, "compress_level"),
    ({"compression": "none", "compress_level": 3}, "compress_level"),
    ({"compress_level": 2.5}, "compress_level"),
    ({"secret": b"short"}, "secret"),
    ({"secret": ""}, "secret"),
    ({"secret": 12345678901234567890}, "secret"),
]


@pytest.mark.parametrize(("options", "key"), BAD_OPTIONS, ids=[str(o) for o, _ in BAD_OPTIONS])
def test_bad_factory_options(options: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_serializer(**options)
    assert info.value.key == key
    assert key.rsplit("_", maxsplit=1)[-1] in str(info.value)
    assert isinstance(info.value, (CacheError, ValueError))


def test_error_messages_list_accepted_values() -> None:
    with pytest.raises(ConfigurationError, match="json, msgpack, pickle, protobuf"):
        make_serializer("yaml")
    with pytest.raises(ConfigurationError, match="'auto', 'zlib', 'zstd', 'none'"):
        make_serializer(compression="lz4")


@pytest.mark.parametrize("protocol", [1, 6, "5", None])
def test_bad_pickle_protocol(protocol: Any) -> None:
    with pytest.raises(ConfigurationError, match="protocol") as info:
        PickleSerializer(protocol=protocol)
    assert info.value.key == "protocol"


def test_older_pickle_protocol() -> None:
    serializer = PickleSerializer(protocol=2, compression="none")
    assert serializer.dumps([1])[4:6] == b"\x80\x02"
    assert serializer.loads(serializer.dumps({"a": (1,)})) == {"a": (1,)}


@pytest.mark.parametrize("size", [0, -1, 1.5])
def test_bad_max_decompressed_size(size: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        Reader(max_decompressed_size=size)
    assert info.value.key == "max_decompressed_size"


def test_allow_pickle_must_be_a_bool() -> None:
    with pytest.raises(ConfigurationError) as info:
        Reader(allow_pickle="no")
    assert info.value.key == "allow_pickle"


def test_zlib_limit_is_exact() -> None:
    body = b"z" * 10_000
    data = make_serializer("pickle", compression="zlib").dumps(body)
    assert PickleSerializer(max_decompressed_size=10_000).loads(data) == body
    with pytest.raises(SerializationError, match="beyond the 9999-byte limit"):
        PickleSerializer(max_decompressed_size=9_999).loads(data)


def test_no_driver_is_imported_until_needed() -> None:
    code = (
        "import sys\n"
        "from cachekit.serialization import make_serializer\n"
        "s = make_serializer('pickle', compression='zlib')\n"
        "s.loads(s.dumps({'a': 1}))\n"
        "drivers = ('orjson', 'msgpack', 'zstandard', 'google.protobuf')\n"
        "print(sorted(d for d in drivers if d in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.stdout.strip() == "[]"


def test_optional_load_reports_absent_modules() -> None:
    assert _optional.load.__wrapped__("cachekit_no_such_module") is None
    assert _optional.load("zlib") is zlib


def test_reader_properties() -> None:
    assert Reader(secret=SECRET).signed
    assert not Reader().signed
    assert PickleSerializer().allow_pickle
    assert not JsonSerializer().allow_pickle
    assert compression.make_compressor("zlib") is not None
    assert compression.make_compressor("none") is None


def test_large_incompressible_bodies_are_probed_not_compressed() -> None:
    import os

    from cachekit.serialization import make_serializer

    serializer = make_serializer("pickle", compression="zlib")
    noise = os.urandom(10_000)
    text = b"<p>the same paragraph again</p>" * 400
    mixed = text[:600] + noise  # a compressible head decides: the whole body is compressed
    assert serializer.dumps(noise)[3] & 0x03 == 0  # stored as is
    assert serializer.dumps(text)[3] & 0x03 == 1  # zlib
    assert serializer.dumps(mixed)[3] & 0x03 == 1
    for value in (noise, text, mixed):
        assert serializer.loads(serializer.dumps(value)) == value


def test_byte_set_pretest_skips_only_noise() -> None:
    """The pre-test may only call noise what the codec probe would also refuse."""
    import base64
    import json
    import os
    import pickle
    import random

    from cachekit.serialization.compression import make_compressor, noise_like

    rng = random.Random(11)
    for _ in range(2000):
        assert noise_like(rng.randbytes(512))
    structured = [
        json.dumps([{"id": i, "name": f"item {i}"} for i in range(40)]).encode(),
        os.urandom(256).hex().encode(),
        base64.b64encode(os.urandom(384)),
        "".join(rng.choice("0123456789") for _ in range(512)).encode(),
        ("缓存是一种存储技术" * 60).encode(),
        pickle.dumps(list(range(100_000, 100_200))),
        rng.randbytes(100) * 6,  # repeated random blocks: LZ compresses them
        rng.randbytes(256) * 2,  # review finding: a period longer than one window
        rng.randbytes(300) * 2,
        # review finding: an ASCII head over 64 bytes, then text in another script
        pickle.dumps(
            '<div class="article-body" data-id="12345"><p class="lead-paragraph">'
            + "Кэширование — это техника хранения данных для быстрого доступа. " * 20
        ),
        ("η προσωρινή αποθήκευση είναι μια τεχνική. " * 20).encode(),
    ]
    probe = make_compressor("zlib")
    assert probe is not None
    for body in structured:
        sample = body[:512]
        assert not noise_like(sample), sample[:20]
        assert len(probe.compress(sample)) < len(sample) * 0.9  # and the codec agrees
    assert not noise_like(rng.randbytes(200))  # too short to judge: left to the codec


def test_probe_keeps_bodies_that_compress_only_by_entropy_coding() -> None:
    """Review finding: a fast-mode (negative level) probe took hex/base64/digits for noise."""
    import base64
    import os
    import random

    from cachekit.serialization import make_serializer

    serializer = make_serializer("pickle")  # auto: zstd when installed
    rng = random.Random(7)
    bodies = [
        os.urandom(8000).hex().encode(),
        base64.b64encode(os.urandom(10_000)),
        "".join(rng.choice("0123456789") for _ in range(10_000)).encode(),
    ]
    for body in bodies:
        stored = serializer.dumps(body)
        assert stored[3] & 0x03 != 0, body[:20]  # compressed
        assert len(stored) < len(body) * 0.85
        assert serializer.loads(stored) == body
