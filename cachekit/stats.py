"""The statistics snapshot every provider returns from ``get_stats()``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
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
    def reads_server(self) -> bool:
        """Whether some figures of this snapshot come from a server (Redis, memcached, a tiered
        cache's L2 of those) or a shared store (a file cache's directory): ``items``,
        ``memory_bytes``, ``evictions``, ``expirations``."""
        return _server_read(self.extra)[0]

    @property
    def server_read_error(self) -> str | None:
        """Why the server figures of this snapshot could not be read, or ``None``.

        Network providers answer ``get_stats()`` while their server is unreachable, with their
        client-side counters and zeros (or a sum over the answering nodes) for the rest; this
        tells such a snapshot from a healthy empty cache. Read from ``extra``: ``server_error``,
        a Redis breaker open (no read tried), memcached ``nodes_up`` below its node count, a file
        cache's directory that could not be listed (``available`` False), at the top level or
        one mapping down (a tiered cache's ``l2``).
        """
        return _server_read(self.extra)[1]

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


def _server_read(extra: Mapping[str, Any], depth: int = 0) -> tuple[bool, str | None]:
    """``(reads a server, why its figures are missing)`` for one ``extra`` mapping."""
    has_server = False
    if "server_error" in extra:
        return True, str(extra["server_error"]) or "server error"
    if "available" in extra:  # the file provider: False when its directory could not be listed
        if extra["available"] is False:
            where = extra.get("directory")
            return True, f"directory {where!r} could not be read" if where else "storage unreadable"
        has_server = True
    if "server" in extra:  # Redis; server_version is set whenever INFO answered
        has_server = True
        if "server_version" not in extra:
            return True, "server not read: its circuit breaker is open"
    nodes = extra.get("nodes")
    if isinstance(nodes, Mapping) and nodes:
        has_server = True
        up = extra.get("nodes_up")
        if not isinstance(up, int) or up < len(nodes):
            down = len(nodes) - (up if isinstance(up, int) else 0)
            return True, f"{down} of {len(nodes)} nodes did not answer"
    if depth == 0:
        for key, value in extra.items():
            if key != "nodes" and isinstance(value, Mapping):
                nested, error = _server_read(value, depth + 1)
                if error is not None:
                    return True, f"{key}: {error}"
                has_server = has_server or nested
    return has_server, None
