"""Per-RPC, per-namespace call counts and latencies, exported to Prometheus on request.

The counters are plain dicts updated from the server's event loop (one thread), read by the
admin service (``GetNamespaceStats``) and by :class:`RpcCollector` when Prometheus scrapes.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["LATENCY_BOUNDS", "RpcCollector", "RpcMetrics"]

#: Histogram bounds of RPC latency, seconds.
LATENCY_BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5)


class _Series:
    """One ``(method, namespace)``: calls by status code and a latency histogram."""

    __slots__ = ("buckets", "codes", "total")

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.buckets = [0] * (len(LATENCY_BOUNDS) + 1)
        self.total = 0.0


class RpcMetrics:
    """Counts by ``(method, namespace, code)`` and latency by ``(method, namespace)``.

    A call costs a dict lookup, two increments and a ``bisect``: totals, counts and the
    cumulative buckets Prometheus wants are computed when something reads them.
    """

    def __init__(self) -> None:
        self._methods: dict[str, dict[str, _Series]] = {}

    def recorder(self, method: str) -> Callable[[str, str, float], None]:
        """``record(namespace, code, seconds)`` for the calls of ``method`` (built once)."""
        by_namespace = self._methods.setdefault(method, {})
        bounds, position = LATENCY_BOUNDS, bisect.bisect_left

        def record(namespace: str, code: str, seconds: float) -> None:
            series = by_namespace.get(namespace)
            if series is None:
                series = by_namespace[namespace] = _Series()
            codes = series.codes
            codes[code] = codes.get(code, 0) + 1
            series.buckets[position(bounds, seconds)] += 1
            series.total += seconds

        return record

    def forget(self, namespace: str) -> None:
        """Drop ``namespace``'s series (it was deleted): kept, they would be exported for ever
        and counted again for a namespace created later under the same name."""
        for by_namespace in list(self._methods.values()):
            by_namespace.pop(namespace, None)

    def record(self, method: str, namespace: str, code: str, seconds: float) -> None:
        self.recorder(method)(namespace, code, seconds)

    def _series(self) -> list[tuple[str, str, _Series]]:
        rows = [
            (method, ns, series)
            for method, by_namespace in list(self._methods.items())
            for ns, series in list(by_namespace.items())
        ]
        return sorted(rows, key=lambda row: (row[0], row[1]))

    def counts(self, namespace: str | None = None) -> list[tuple[str, str, int]]:
        """``(method, code, count)`` rows, of one namespace or of all."""
        rows: dict[tuple[str, str], int] = {}
        for method, ns, series in self._series():
            if namespace is None or ns == namespace:
                for code, count in list(series.codes.items()):
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
        series = self._series()
        for method, ns, one in series:
            for code, count in sorted(one.codes.items()):
                calls.add_metric([method, ns, code], count)
        yield calls
        latency = HistogramMetricFamily(
            "cachekit_grpc_call_seconds",
            "gRPC call latency on the server, by method and namespace",
            labels=["method", "namespace"],
        )
        for method, ns, one in series:
            cumulative, running = [], 0
            for bound, n in zip((*LATENCY_BOUNDS, float("inf")), list(one.buckets), strict=True):
                running += n
                cumulative.append((_label(bound), running))
            latency.add_metric([method, ns], cumulative, one.total)
        yield latency


def _label(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class RpcCollector:
    """A ``prometheus_client`` collector over :class:`RpcMetrics`."""

    def __init__(self, metrics: RpcMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        return self.metrics.collect()
