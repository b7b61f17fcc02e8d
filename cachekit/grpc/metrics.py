"""Per-RPC, per-namespace call counts and latencies, exported to Prometheus on request.

The counters are plain dicts updated from the server's event loop (one thread), read by the
admin service (``GetNamespaceStats``) and by :class:`RpcCollector` when Prometheus scrapes.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any

__all__ = ["LATENCY_BOUNDS", "RpcCollector", "RpcMetrics"]

#: Histogram bounds of RPC latency, seconds.
LATENCY_BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5)


class _Latency:
    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BOUNDS) + 1)
        self.count = 0
        self.total = 0.0


class RpcMetrics:
    """Counts by ``(method, namespace, code)`` and latency by ``(method, namespace)``."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}
        self._latency: dict[tuple[str, str], _Latency] = {}

    def record(self, method: str, namespace: str, code: str, seconds: float) -> None:
        key = (method, namespace, code)
        self._counts[key] = self._counts.get(key, 0) + 1
        latency = self._latency.get((method, namespace))
        if latency is None:
            latency = self._latency[(method, namespace)] = _Latency()
        latency.buckets[bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1
        latency.count += 1
        latency.total += seconds

    def counts(self, namespace: str | None = None) -> list[tuple[str, str, int]]:
        """``(method, code, count)`` rows, of one namespace or of all."""
        rows: dict[tuple[str, str], int] = {}
        for (method, ns, code), count in list(self._counts.items()):
            if namespace is None or ns == namespace:
                rows[(method, code)] = rows.get((method, code), 0) + count
        return sorted((m, c, n) for (m, c), n in rows.items())

    def collect(self) -> Iterator[Any]:
        """Prometheus metric families (needs ``prometheus-client``)."""
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        calls = CounterMetricFamily(
            "cachekit_grpc_calls",
            "gRPC calls handled, by method, namespace and status code",
            labels=["method", "namespace", "code"],
        )
        for (method, ns, code), count in sorted(self._counts.items()):
            calls.add_metric([method, ns, code], count)
        yield calls
        latency = HistogramMetricFamily(
            "cachekit_grpc_call_seconds",
            "gRPC call latency on the server, by method and namespace",
            labels=["method", "namespace"],
        )
        for (method, ns), hist in sorted(self._latency.items()):
            cumulative, running = [], 0
            for bound, n in zip((*LATENCY_BOUNDS, float("inf")), hist.buckets, strict=True):
                running += n
                cumulative.append((_label(bound), running))
            latency.add_metric([method, ns], cumulative, hist.total)
        yield latency


def _label(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class RpcCollector:
    """A ``prometheus_client`` collector over :class:`RpcMetrics`."""

    def __init__(self, metrics: RpcMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        return self.metrics.collect()
