"""Conversions between protobuf messages and the core's values (TTLs, stats, timestamps)."""

from __future__ import annotations

import json
import time
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from ..errors import InvalidArgument, InvalidKey
from ..glob import compile_glob, open_ended
from ..sentinels import DEFAULT, DefaultType
from ..stats import CacheStats
from ..v1 import cache_pb2 as pb

__all__ = [
    "InvalidArgument",
    "check_duration",
    "check_pattern",
    "duration",
    "in_timestamp_range",
    "request_ttl",
    "seconds",
    "stats_message",
    "timestamp",
]

_MAX_PATTERN = 1024
#: google.protobuf.Duration's valid range (+-10 000 years) and Timestamp's last second
#: (9999-12-31T23:59:59Z): JSON (grpcurl, transcoding, JsonFormat) refuses anything past them.
MAX_DURATION_SECONDS = 315_576_000_000
MAX_TIMESTAMP_SECONDS = 253_402_300_799


def check_duration(value: Duration, field: str) -> Duration:
    """``value`` if it is a valid Duration (range, nanos, signs), else InvalidArgument."""
    secs, nanos = value.seconds, value.nanos
    if (
        abs(secs) > MAX_DURATION_SECONDS
        or abs(nanos) > 999_999_999
        or (secs > 0 > nanos)
        or (secs < 0 < nanos)
    ):
        raise InvalidArgument(
            f"{field} is not a valid google.protobuf.Duration (seconds {secs}, nanos {nanos}; "
            f"at most {MAX_DURATION_SECONDS} seconds)"
        )
    return value


def seconds(value: Duration) -> float:
    return value.seconds + value.nanos / 1e9


def duration(value: float) -> Duration:
    whole = int(value)
    return Duration(seconds=whole, nanos=round((value - whole) * 1e9))


def in_timestamp_range(epoch: float) -> bool:
    """Whether ``epoch`` is a valid Timestamp (up to 9999-12-31T23:59:59Z)."""
    return epoch < MAX_TIMESTAMP_SECONDS + 1


def timestamp(epoch: float) -> Timestamp:
    whole = int(epoch)
    return Timestamp(seconds=whole, nanos=round((epoch - whole) * 1e9))


def request_ttl(
    message: Any, field: str = "ttl", never: str = "no_expiry"
) -> float | DefaultType | None:
    """A request's TTL: DEFAULT (unset), None (``no_expiry``), or seconds (``<= 0``: remove)."""
    has_ttl = message.HasField(field)
    if getattr(message, never):
        if has_ttl:
            raise InvalidArgument(f"{field} and {never} are mutually exclusive")
        return None
    if not has_ttl:
        return DEFAULT
    value = seconds(check_duration(getattr(message, field), field))
    if value < 0:
        raise InvalidArgument(
            f"{field} must not be negative (zero removes the entry), got {value}s"
        )
    return value


def check_pattern(pattern: str) -> str:
    """A glob the memory provider and Redis read alike; an unterminated class or a final lone
    backslash (Redis reads them, but a client in another language may well not) is refused."""
    if len(pattern) > _MAX_PATTERN:
        raise InvalidKey(f"pattern is longer than {_MAX_PATTERN} characters")
    if open_ended(pattern):  # the glob module's own walk: "[]" is an empty class, as in Redis
        raise InvalidKey(
            f"pattern {pattern!r} has an unterminated [ class or ends with a lone backslash"
        )
    compile_glob(pattern)
    return pattern


def stats_message(stats: CacheStats) -> pb.CacheStats:
    message = pb.CacheStats(
        name=stats.name,
        provider=stats.provider,
        items=stats.items,
        hits=stats.hits,
        misses=stats.misses,
        sets=stats.sets,
        deletes=stats.deletes,
        evictions=stats.evictions,
        expirations=stats.expirations,
        memory_bytes=stats.memory_bytes,
        started_at=timestamp(stats.started_at),
        uptime=duration(max(stats.uptime, 0.0)),
        hit_ratio=stats.hit_ratio,
        get_latency_sum=stats.get_latency_sum,
        get_latency_count=stats.get_latency_count,
        extra_json=json.dumps(stats.extra, sort_keys=True, default=str),
    )
    if stats.memory_limit is not None:
        message.memory_limit = stats.memory_limit
    if stats.max_entries is not None:
        message.max_entries = stats.max_entries
    if stats.avg_get_seconds is not None:
        message.avg_get_seconds = stats.avg_get_seconds
    if stats.policy is not None:
        message.policy = stats.policy
    for bound, count in stats.get_latency_buckets:
        message.get_latency_buckets.add(upper_bound_seconds=bound, count=count)
    return message


def stats_from_message(message: pb.CacheStats) -> CacheStats:
    """The inverse of :func:`stats_message` (the client's ``get_stats``)."""
    return CacheStats(
        name=message.name,
        provider=message.provider,
        items=message.items,
        hits=message.hits,
        misses=message.misses,
        sets=message.sets,
        deletes=message.deletes,
        evictions=message.evictions,
        expirations=message.expirations,
        memory_bytes=message.memory_bytes,
        memory_limit=message.memory_limit if message.HasField("memory_limit") else None,
        max_entries=message.max_entries if message.HasField("max_entries") else None,
        avg_get_seconds=(message.avg_get_seconds if message.HasField("avg_get_seconds") else None),
        started_at=message.started_at.seconds + message.started_at.nanos / 1e9,
        uptime=seconds(message.uptime),
        policy=message.policy if message.HasField("policy") else None,
        get_latency_buckets=tuple(
            (b.upper_bound_seconds, b.count) for b in message.get_latency_buckets
        ),
        get_latency_sum=message.get_latency_sum,
        get_latency_count=message.get_latency_count,
        extra=json.loads(message.extra_json) if message.extra_json else {},
    )


def now() -> float:
    return time.time()
