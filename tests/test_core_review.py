"""Regressions from a review of the core: msgpack tuple keys, Redis glob semantics, JSON key
collisions and the error types of bad TTL/tags arguments."""

from __future__ import annotations

import asyncio
import enum
import itertools
import math
import random
import time
from datetime import timedelta
from typing import Any

import pytest
import redis

from cachekit.errors import (
    CacheError,
    ConfigurationError,
    InvalidArgument,
    InvalidKey,
    SerializationError,
)
from cachekit.glob import compile_glob
from cachekit.providers.memory import MemoryCache
from cachekit.serialization import make_serializer
from cachekit.serialization.json import JsonSerializer
from cachekit.testing.servers import RedisServer
from cachekit.ttl import check_default_ttl, to_seconds

# -- 1: msgpack tuple keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {(1, 2): "a"},
        {(1, (2, (3, "x"))): [1, 2]},  # nested tuples; values stay lists
        {"outer": {(b"k", None): {(): 1}}},  # a key in a nested map, and the empty tuple
        [{(1.5, True): [4, 5]}],
    ],
)
def test_msgpack_tuple_keys_round_trip(value: Any) -> None:
    """A tuple key was packed as an array and read back as an unhashable list: every read of
    the entry raised SerializationError, so a shared cache held a poison entry."""
    serializer = make_serializer("msgpack")
    assert serializer.loads(serializer.dumps(value)) == value


def test_msgpack_tuple_keys_through_a_cache() -> None:
    cache = MemoryCache(serializer="msgpack")
    cache.set("k", {(1, 2): "a", 3: [4]})
    assert cache.get("k") == {(1, 2): "a", 3: [4]}


def test_msgpack_arrays_outside_keys_stay_lists() -> None:
    serializer = make_serializer("msgpack")
    assert serializer.loads(serializer.dumps({"t": (1, (2,))})) == {"t": [1, [2]]}
    with pytest.raises(SerializationError, match="corrupt msgpack"):
        serializer.loads(b"\xc1\x01\x05\x00\x81\x81\x01\x02\x03")  # a map as a map key


# -- 2: glob patterns select what Redis selects ---------------------------------------------------

#: (pattern, key, whether Redis's stringmatchlen matches): each follows from util.c.
GLOB_CASES = [
    ("a[b", "ab", True),  # an unclosed class runs to the end of the pattern
    ("a[b", "a[b", False),
    ("a[bc", "ac", True),
    ("a[", "a[", False),  # an empty unclosed class matches nothing
    ("a[", "a", False),
    ("a[^", "ax", True),  # ... and negated, any one byte
    ("a[^", "a", False),
    ("[^a", "b", True),
    ("[^a", "a", False),
    ("a*[", "a[", False),
    ("[a-]", "a", True),  # the range a-] (swapped: ]^_`a), then unclosed
    ("[a-]", "_", True),
    ("[a-]", "-", False),
    ("[a-]x]", "x", True),  # "x" joins the class; the last "]" closes it
    ("[a-]x]", "-", False),
    ("[\\]", "]", True),  # the escaped ] is a member; the class is unclosed
    ("[a-\\\\]", "]", True),  # the range a-\ (\]^_`a), then an escaped "]", unclosed
    ("[a-\\\\]", "\\", True),
    ("[a-\\]", "\\", True),
    ("[a-\\]", "b", False),
    ("[a\\", "\\", True),  # a "\" ending the pattern is itself
    ("[]", "]", False),  # an empty class
    ("[]a]", "a]", False),
    ("[^]", "x", True),
    ("[c-a]", "b", True),  # reversed ends are swapped
    ("[a-c-e]", "-", True),
    ("[a-c-e]", "d", False),
    ("a\\*", "a*", True),
    ("a\\*", "ab", False),
    ("a\\", "a\\", True),
    ("\\**", "*x", True),  # an escaped star does not join the run of the next one
    ("\\**", "x*", False),
    ("**a**", "ba", True),
    ("*a*b*", "xaxbx", True),
    ("?", "é", False),  # keys are matched as UTF-8 bytes, as Redis does
    ("??", "é", True),
    ("[é]", "é", False),
    ("[é][é]", "é", True),
]


@pytest.mark.parametrize(("pattern", "key", "expected"), GLOB_CASES)
def test_glob_follows_redis(pattern: str, key: str, expected: bool) -> None:
    assert compile_glob(pattern)(key) is expected


def test_glob_deep_star_patterns_do_not_backtrack_exponentially() -> None:
    """Redis prunes a failed '*' (skipLongerMatches); a regex of .* runs did not."""
    matches = compile_glob("*a*a*a*a*a*a*b")
    started = time.perf_counter()
    assert not matches("a" * 70)  # took ~2 s: polynomial of the stars' degree
    assert time.perf_counter() - started < 0.2
    assert not matches("a" * 5000)
    assert time.perf_counter() - started < 0.5


def test_glob_refuses_unhashable_patterns_with_invalid_key() -> None:
    with pytest.raises(InvalidKey):
        compile_glob(["x"])  # type: ignore[arg-type]


def test_memory_scan_and_delete_follow_redis_for_an_unclosed_class() -> None:
    cache = MemoryCache()
    for key in ("ab", "a[b", "ac"):
        cache.set(key, 1)
    assert cache.scan_keys("a[b") == ("", ["ab"])
    assert cache.delete_pattern("a[bc") == 2
    assert cache.keys() == ["a[b"]


_PATTERN_ALPHABET = "ab]-[^\\*?c"
_KEY_ALPHABET = "ab]-[^\\c"


def _redis_selects(server: RedisServer, keys: list[str], patterns: list[str]) -> list[set[str]]:
    """What ``KEYS`` selects for each pattern among ``keys``, under a throwaway prefix."""
    prefix = f"globdiff{random.randrange(10**9)}:"
    client = redis.Redis(host=server.host, port=server.port)
    try:
        client.mset({(prefix + key).encode(): b"1" for key in keys})
        pipe = client.pipeline(transaction=False)
        for pattern in patterns:
            pipe.keys(prefix.encode() + pattern.encode())
        replies = pipe.execute()
        client.delete(*[(prefix + key).encode() for key in keys])
    finally:
        client.close()
    return [{raw[len(prefix) :].decode() for raw in reply} for reply in replies]


def test_glob_agrees_with_redis_on_random_patterns(redis_server: RedisServer) -> None:
    """Differential: random patterns over the glob's special characters, on every key of up to
    three characters of an alphabet of its special characters and letters."""
    keys = [
        "".join(chars)
        for length in (1, 2, 3)
        for chars in itertools.product(_KEY_ALPHABET, repeat=length)
    ]
    rng = random.Random(20240607)
    patterns = sorted(
        {
            "".join(rng.choice(_PATTERN_ALPHABET) for _ in range(rng.randint(1, 7)))
            for _ in range(3000)
        }
    )
    selected = _redis_selects(redis_server, keys, patterns)
    disagreements = []
    for pattern, by_redis in zip(patterns, selected, strict=True):
        matches = compile_glob(pattern)
        ours = {key for key in keys if matches(key)}
        if ours != by_redis:
            disagreements.append((pattern, sorted(ours ^ by_redis)[:5]))
    assert not disagreements, f"{len(disagreements)} of {len(patterns)}: {disagreements[:10]}"


def test_glob_agrees_with_redis_on_non_ascii_keys(redis_server: RedisServer) -> None:
    """Redis matches bytes: '?' and a class take one byte of a multi-byte character."""
    alphabet = ["a", "é", "\u20ac"]  # 1, 2 and 3 UTF-8 bytes
    keys = ["".join(c) for n in (1, 2) for c in itertools.product(alphabet, repeat=n)]
    rng = random.Random(7)
    pieces = ["a", "é", "\u20ac", "?", "*", "[é]", "[^a]", "[a\u20ac", "\\é"]
    patterns = sorted(
        {"".join(rng.choice(pieces) for _ in range(rng.randint(1, 4))) for _ in range(800)}
    )
    selected = _redis_selects(redis_server, keys, patterns)
    for pattern, by_redis in zip(patterns, selected, strict=True):
        matches = compile_glob(pattern)
        assert {key for key in keys if matches(key)} == by_redis, pattern


# -- 3: JSON keys that collide as strings ---------------------------------------------------------


class Colour(enum.Enum):
    RED = {1: "a", "1": "b"}  # noqa: RUF012 - an enum member's value


@pytest.mark.parametrize("use_orjson", [False, True])
@pytest.mark.parametrize(
    ("value", "key"),
    [
        ({1: "a", "1": "b"}, "1"),
        ({True: 1, "true": 2}, "true"),
        ({"null": 2, None: 1}, "null"),
        ({1.5: 1, "1.5": 2}, "1.5"),
        ([{"x": {False: 0, "false": 1}}], "false"),
        ((0, {-3: 1, "-3": 2}), "-3"),
        ({"e": Colour.RED}, "1"),
    ],
)
def test_json_refuses_keys_that_collide_as_strings(use_orjson: bool, value: Any, key: str) -> None:
    """{1: "a", "1": "b"} was stored as {"1":"a","1":"b"} and read back as {'1': 'b'}."""
    serializer = JsonSerializer(use_orjson=use_orjson)
    with pytest.raises(SerializationError, match=f"JSON key '{key}'"):
        serializer.dumps(value)


@pytest.mark.parametrize("use_orjson", [False, True])
def test_json_non_str_keys_that_do_not_collide_still_work(use_orjson: bool) -> None:
    serializer = JsonSerializer(use_orjson=use_orjson)
    value = {1: "a", "2": "b", None: [{"1": 1, "x": 2}], "true": {"2": 3}, 2.5: 0}
    assert serializer.loads(serializer.dumps(value)) == {
        "1": "a",
        "2": "b",
        "null": [{"1": 1, "x": 2}],
        "true": {"2": 3},
        "2.5": 0,
    }


# -- 4: bad TTL and tags arguments are CacheErrors ------------------------------------------------


def test_a_nan_ttl_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="NaN"):
        MemoryCache().set("k", 1, ttl=float("nan"))
    with pytest.raises(InvalidArgument):
        to_seconds(float("nan"))


@pytest.mark.parametrize("ttl", ["5", b"5", True, [5], 1j])
def test_a_ttl_of_the_wrong_type_is_a_cache_error_and_a_type_error(ttl: Any) -> None:
    cache = MemoryCache()
    for call in (
        lambda: cache.set("k", 1, ttl=ttl),
        lambda: cache.add("k", 1, ttl=ttl),
        lambda: cache.touch("k", ttl=ttl),
        lambda: cache.get_or_set("k", 1, ttl=ttl),
    ):
        with pytest.raises(CacheError) as info:
            call()
        assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("ttl", [10**400, 10**5000], ids=["10**400", "10**5000"])
def test_a_ttl_beyond_a_float_is_an_invalid_argument(ttl: int) -> None:
    """float(10**400) raised OverflowError, which no handler of the package's errors caught."""
    cache = MemoryCache()
    with pytest.raises(InvalidArgument, match="use None for no expiry"):
        cache.set("k", 1, ttl=ttl)
    with pytest.raises(InvalidArgument):
        cache.set("k", 1, ttl=ttl, tags=["t"])
    with pytest.raises(InvalidArgument):
        cache.touch("k", ttl)
    with pytest.raises(ConfigurationError):
        check_default_ttl(ttl)
    with pytest.raises(ConfigurationError):
        MemoryCache(default_ttl=ttl)


def test_a_hugely_negative_ttl_still_means_do_not_store() -> None:
    cache = MemoryCache()
    cache.set("k", 1)
    cache.set("k", 2, ttl=-(10**400))
    assert "k" not in cache
    assert to_seconds(-(10**400)) == -math.inf
    assert to_seconds(10**300) == 1e300
    assert to_seconds(timedelta(days=1)) == 86400.0


@pytest.mark.parametrize("tags", ["a", b"ab", [1], [""], 5, [["a"]]])
def test_bad_tags_are_a_cache_error_and_a_type_error(tags: Any) -> None:
    cache = MemoryCache()
    for call in (
        lambda: cache.set("k", 1, tags=tags),
        lambda: cache.add("k", 1, tags=tags),
        lambda: cache.set_many({"k": 1}, tags=tags),
        lambda: cache.invalidate_tags(tags),
    ):
        with pytest.raises(CacheError) as info:
            call()
        assert isinstance(info.value, TypeError)


def test_aget_or_set_refuses_an_awaitable_with_a_cache_error() -> None:
    async def compute() -> int:
        return 1

    async def run() -> None:
        coroutine = compute()
        try:
            with pytest.raises(CacheError) as info:
                await MemoryCache().aget_or_set("k", coroutine)
            assert isinstance(info.value, TypeError)
        finally:
            coroutine.close()

    asyncio.run(run())
