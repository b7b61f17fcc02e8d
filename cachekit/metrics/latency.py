"""A sampled latency histogram cheap enough for a cache's hot path.

Timing every ``get`` would cost more than an in-memory hit itself (two ``perf_counter`` calls
and a bucket lookup), so providers time one call in ``sample_every`` with a bit mask the caller
holds, and pay nothing on the others::

    n = self._tick = self._tick + 1
    if n & self._latency.mask == 0:
        t0 = perf_counter()
        ...                                 # the real lookup
        with self._lock:
            self._latency.observe(perf_counter() - t0)

Counts are kept per bucket, not cumulatively, so ``observe`` touches one slot; the cumulative
Prometheus form is built only by :meth:`LatencySampler.buckets`, i.e. at scrape time. Quantiles
and averages of a uniform sample estimate those of every call; ``count`` is the number of
*sampled* calls, not of all calls (the cache's hit and miss counters give that).

The sampler is not thread-safe on its own: providers call :meth:`~LatencySampler.observe`
under the lock that already guards their counters, so it adds no second lock.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Any

from cachekit.errors import ConfigurationError

__all__ = [
    "DEFAULT_LATENCY_BOUNDS",
    "DEFAULT_SAMPLE_EVERY",
    "MAX_SAMPLE_EVERY",
    "GetTimer",
    "LatencySampler",
]

#: Upper bounds (seconds) of the default buckets: 1 µs to 1 s in 1-2.5-5 steps, which covers
#: an in-process hit (~1 µs) up to a slow network round trip. Prometheus ``le`` semantics.
DEFAULT_LATENCY_BOUNDS: tuple[float, ...] = (
    1e-6, 2.5e-6, 5e-6,
    1e-5, 2.5e-5, 5e-5,
    1e-4, 2.5e-4, 5e-4,
    1e-3, 2.5e-3, 5e-3,
    1e-2, 2.5e-2, 5e-2,
    0.1, 0.25, 0.5,
    1.0,
)  # fmt: skip

#: Default sampling period: one ``get`` in 64 is timed.
DEFAULT_SAMPLE_EVERY = 64
#: Largest ``stats_sample_every`` a network provider accepts (a power of two).
MAX_SAMPLE_EVERY = 65536


class LatencySampler:
    """Fixed-bucket histogram of sampled durations, read by ``get_stats()``.

    ``sample_every`` must be a power of two so that the provider's test is one ``&`` with
    :attr:`mask` instead of a modulo or a random draw.
    """

    __slots__ = ("_bounds", "_counts", "count", "mask", "sample_every", "sum")

    def __init__(
        self,
        bounds: Iterable[float] = DEFAULT_LATENCY_BOUNDS,
        *,
        sample_every: int = DEFAULT_SAMPLE_EVERY,
    ) -> None:
        if type(sample_every) is not int or sample_every < 1 or sample_every & (sample_every - 1):
            raise ConfigurationError(
                f"sample_every must be a positive power of two, got {sample_every!r}",
                key="sample_every",
            )
        bounds = tuple(float(b) for b in bounds)
        if not bounds:
            raise ConfigurationError("latency bounds must not be empty", key="bounds")
        if any(not math.isfinite(b) or b <= 0 for b in bounds) or any(
            a >= b for a, b in itertools.pairwise(bounds)
        ):
            raise ConfigurationError(
                "latency bounds must be finite, positive and strictly increasing "
                "(the +Inf bucket is implicit)",
                key="bounds",
            )
        self._bounds: tuple[float, ...] = bounds
        # One slot per bound plus the overflow (+Inf) slot; per-bucket, not cumulative.
        self._counts: list[int] = [0] * (len(bounds) + 1)
        self.sample_every: int = sample_every
        #: ``tick & mask == 0`` selects the calls to time.
        self.mask: int = sample_every - 1
        #: Number of observed (sampled) durations.
        self.count: int = 0
        #: Sum of observed durations, in seconds.
        self.sum: float = 0.0

    def observe(self, seconds: float) -> None:
        """Record one duration; ``le`` semantics (a value equal to a bound falls in it)."""
        self._counts[bisect_left(self._bounds, seconds)] += 1
        self.count += 1
        self.sum += seconds

    @property
    def bounds(self) -> tuple[float, ...]:
        """The finite upper bounds, without the implicit ``inf``."""
        return self._bounds

    @property
    def average(self) -> float | None:
        """Mean sampled duration, ``None`` before the first sample (as in ``CacheStats``)."""
        return self.sum / self.count if self.count else None

    def buckets(self) -> tuple[tuple[float, int], ...]:
        """Cumulative ``(upper_bound, count)`` pairs ending with ``(inf, count)``.

        This is the shape of :attr:`cachekit.stats.CacheStats.get_latency_buckets`.
        """
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip(self._bounds, self._counts, strict=False):
            running += n
            out.append((bound, running))
        out.append((math.inf, running + self._counts[-1]))
        return tuple(out)

    def reset(self) -> None:
        """Zero every counter (a provider's counter reset, not a data clear)."""
        self._counts = [0] * (len(self._bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def __repr__(self) -> str:
        return (
            f"<LatencySampler count={self.count} sum={self.sum:.6g} "
            f"sample_every={self.sample_every}>"
        )


class GetTimer:
    """The sampled ``get`` histogram of a provider with no lock of its own on the read path.

    Network providers' reads take no provider lock (only the connection pool's), so the
    sampler gets a lock of its own, taken once per *sampled* call only. ``ticks`` and ``mask``
    are read by the caller's hot path directly (see :class:`~cachekit.providers.timed.TimedGets`).
    """

    __slots__ = ("_lock", "mask", "sampler", "ticks")

    def __init__(self, sample_every: int = DEFAULT_SAMPLE_EVERY) -> None:
        try:
            self.sampler = LatencySampler(sample_every=sample_every)
        except ConfigurationError as exc:
            raise ConfigurationError(str(exc), key="stats_sample_every") from None
        self.mask: int = self.sampler.mask
        #: ``next(ticks) & mask == 0`` selects the calls to time (itertools.count: one C call,
        #: safe under threads).
        self.ticks: Iterator[int] = itertools.count(1)
        self._lock = threading.Lock()

    def observe_since(self, t0: float) -> None:
        """Record the time since ``t0`` (a ``time.perf_counter()`` reading)."""
        elapsed = time.perf_counter() - t0
        with self._lock:
            self.sampler.observe(elapsed)

    def fields(self) -> dict[str, Any]:
        """The ``CacheStats`` latency fields: ``avg_get_seconds`` and the histogram."""
        with self._lock:
            sampler = self.sampler
            return {
                "avg_get_seconds": sampler.average,
                "get_latency_buckets": sampler.buckets(),
                "get_latency_sum": sampler.sum,
                "get_latency_count": sampler.count,
            }

    def reset(self) -> None:
        with self._lock:
            self.sampler.reset()

    def _after_fork(self) -> None:
        # A lock held by another thread at the fork stays held in the child forever.
        self._lock = threading.Lock()
