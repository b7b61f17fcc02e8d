"""A manual clock for TTL tests: tests move time instead of sleeping."""

from __future__ import annotations

import threading

__all__ = ["FakeClock"]


class FakeClock:
    """Monotonic seconds that only move when told to; pass it as a provider's ``clock``."""

    def __init__(self, start: float = 1_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward; moving it backwards is refused, as a monotonic clock would."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go backwards")
        with self._lock:
            self._now += seconds

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"
