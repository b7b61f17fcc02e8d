"""The statistics snapshot every provider returns from ``get_stats()``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CacheStats"]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A point-in-time, immutable snapshot of one cache's counters.

    Counters are cumulative since ``started_at`` (which a provider's ``reset_stats()``, where it
    has one, restarts; ``clear()`` empties the data, never the counters). ``memory_bytes`` is
    the provider's own accounting (see the sizer it was built with), not a measurement of the
    process. ``avg_get_seconds`` is averaged over a sample of ``get`` calls, so reading it costs
    nothing on the hot path.
    """

    name: str
    provider: str
    items: int
    hits: int
    misses: int
    sets: int
    deletes: int
    evictions: int
    expirations: int
    memory_bytes: int
    memory_limit: int | None
    max_entries: int | None
    avg_get_seconds: float | None
    started_at: float
    uptime: float
    policy: str | None = None
    #: Cumulative sampled ``get`` latency histogram: ``(upper_bound_seconds, count)`` pairs,
    #: with the last bound ``inf``; empty when the provider does not sample.
    get_latency_buckets: tuple[tuple[float, int], ...] = ()
    get_latency_sum: float = 0.0
    get_latency_count: int = 0
    #: Provider-specific extras (breaker state, node counts...), JSON-friendly values only.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return self.hits + self.misses

    @property
    def hit_ratio(self) -> float:
        """Hits over lookups; 0.0 before the first lookup (never a division error)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict including the derived ``hit_ratio`` and ``requests``."""
        data = dataclasses.asdict(self)
        data["hit_ratio"] = self.hit_ratio
        data["requests"] = self.requests
        data["get_latency_buckets"] = [
            ["+Inf" if bound == float("inf") else bound, count]
            for bound, count in self.get_latency_buckets
        ]
        return data
