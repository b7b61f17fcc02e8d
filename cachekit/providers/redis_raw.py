"""Raw Redis access in a Redis provider's own terms, for commands cachekit does not wrap.

The Django adapter's django-redis data-structure methods (``sadd``, ``hset``, ``zadd``...) run
on the provider's redis-py client (:meth:`RedisCache.redis_client`); these helpers give them what
the provider's own commands use: the stored key of a cache key (under ``prefix``, so ``clear()``,
``delete_pattern``, ``ttl`` and ``touch`` cover it), values encoded and decoded by the provider's
serializer (ints as bare decimals, as the provider stores them), and the provider's circuit
breaker, fail-open and error types around each call. Every function takes the provider.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import redis.exceptions

from ..errors import UnsupportedOperation
from .redis import RedisCache
from .redis_async import RAISE
from .redis_scripts import escape_glob, px

__all__ = [
    "aadd_to_int",
    "add_to_int",
    "call",
    "data_key",
    "data_keys",
    "decode",
    "encode",
    "match_pattern",
]


def data_key(provider: RedisCache, key: str) -> str:
    """The Redis key ``provider`` stores ``key``'s value under (``prefix`` + key; on a cluster
    in a hash tag, ``prefix{key}``)."""
    return provider._kopen + provider._check_key(key) + provider._kclose


def data_keys(provider: RedisCache, keys: Iterable[str], op: str) -> list[str]:
    """:func:`data_key` of each key of a multi-key command. A cluster provider puts every key in
    a slot of its own (its hash tag), so there such a command takes one distinct key only."""
    made = [data_key(provider, key) for key in keys]
    if provider.hash_tags and len(set(made)) > 1:
        raise UnsupportedOperation(
            f"{op}: on Redis Cluster each key has a slot of its own (cachekit hash-tags the "
            "whole key), so a command over several keys cannot run"
        )
    return made


def encode(provider: RedisCache, value: Any) -> bytes:
    """``value`` as ``provider`` stores it (its serializer's bytes; an int as its decimal)."""
    encoded: bytes = provider._dumps(value)
    return encoded


def decode(provider: RedisCache, raw: bytes) -> Any:
    """A value read back from Redis (the inverse of :func:`encode`)."""
    return provider._loads(raw)


def match_pattern(provider: RedisCache, match: Any) -> bytes:
    """A ``SSCAN MATCH`` glob over encoded members for ``match``, a glob over str members: the
    encoding's header, escaped, then ``match`` itself. Raises :class:`UnsupportedOperation` when
    the serializer does not store a str as header + its UTF-8 (a signed serializer appends a
    signature); members long enough to be compressed do not match."""
    if isinstance(match, bytes):
        raw = match
    elif isinstance(match, str):
        raw = match.encode()
    else:  # django-redis encodes any value: an int, say, matches that member exactly
        return escape_glob(encode(provider, match).decode("latin-1")).encode("latin-1")
    encoded = encode(provider, match)
    if not encoded.endswith(raw):
        raise UnsupportedOperation(
            "match: this cache's serializer does not store str members as their text (a "
            "secret signs them), so they cannot be matched by a glob"
        )
    head = encoded[: len(encoded) - len(raw)]
    return escape_glob(head.decode("latin-1")).encode("latin-1") + raw


def call(provider: RedisCache, op: str, fn: Callable[[Any], Any]) -> Any:
    """``fn(client)`` on the provider's redis-py client, as the provider runs its own commands:
    behind its circuit breaker, an outage raising ``RedisUnavailable`` (or, with ``fail_open``,
    logged and counted, returning ``None``), a server error ``CacheError``."""
    return provider._call(op, None, lambda: fn(provider.redis_client()))


def add_to_int(provider: RedisCache, key: str, delta: int, *, create: bool) -> int | None:
    """Add ``delta`` to the int stored at ``key`` in Python, for sums beyond what Redis's
    ``INCRBY`` takes (signed 64 bits), keeping the key's TTL: the fallback django-redis has,
    made atomic with ``WATCH``/``MULTI`` (retried if the key changes meanwhile). ``None`` when
    the value is not an int; a missing key raises ``ValueError`` unless ``create``, which starts
    it at 0 with the provider's ``default_ttl``."""
    rkey = data_key(provider, key)

    def run(client: Any) -> int | None:
        with client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(rkey)
                    raw = pipe.get(rkey)
                    ms = None if raw is None else int(pipe.pttl(rkey))
                    total, px_ms = _sum(provider, key, raw, ms, delta, create=create)
                    if total is None:
                        return None
                    pipe.multi()
                    pipe.set(rkey, encode(provider, total), px=px_ms)
                    pipe.execute()
                    return total
                except redis.exceptions.WatchError:
                    continue

    result: int | None = provider._call("incr", RAISE, run, provider.redis_client())
    return result


async def aadd_to_int(provider: RedisCache, key: str, delta: int, *, create: bool) -> int | None:
    """:func:`add_to_int` on the provider's asyncio client (the ``aincr`` fallback)."""
    rkey = data_key(provider, key)

    async def run(client: Any) -> int | None:
        async with client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(rkey)
                    raw = await pipe.get(rkey)
                    ms = None if raw is None else int(await pipe.pttl(rkey))
                    total, px_ms = _sum(provider, key, raw, ms, delta, create=create)
                    if total is None:
                        return None
                    pipe.multi()
                    pipe.set(rkey, encode(provider, total), px=px_ms)
                    await pipe.execute()
                    return total
                except redis.exceptions.WatchError:
                    continue

    result: int | None = await provider._acall("incr", RAISE, run, provider._clients.aclient())
    return result


def _sum(
    provider: RedisCache, key: str, raw: bytes | None, ms: int | None, delta: int, *, create: bool
) -> tuple[int | None, int | None]:
    """The new value and its PX (``None``: no expiry) from what WATCH read: ``(None, None)``
    when the stored value is not an int."""
    if raw is None:
        if not create:
            raise ValueError(f"Key '{key}' not found")
        default_ms = 0 if provider.default_ttl is None else px(provider.default_ttl)
        return delta, default_ms if default_ms > 0 else None
    value = decode(provider, raw)
    if type(value) is not int:
        return None, None
    return value + delta, ms if ms is not None and ms > 0 else None
