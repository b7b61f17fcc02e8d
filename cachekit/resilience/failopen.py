"""What a backend failure becomes: a typed error by default, or, when the user chose fail-open,
a logged and counted miss/no-op.

Nothing is lost silently either way: with ``fail_open=False`` every failure raises
:class:`~cachekit.errors.BackendUnavailable` with the driver's error chained; with
``fail_open=True`` every swallowed failure is counted per operation (exported in stats and
metrics) and logged as a warning at most once per ``log_interval`` seconds per cache, with the
number of failures since the last message, so an outage cannot flood the logs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..errors import BackendUnavailable

__all__ = ["FailOpen"]

#: Operations whose ``fail_open_<op>_errors_total`` is reported from the start (as 0) when
#: failing open: a counter series that appears only at its first failure loses that increment
#: to ``rate()`` and ``increase()``. Rarer operations still appear at their first failure.
COMMON_OPERATIONS = (
    "get", "set", "add", "delete", "get_many", "set_many", "delete_many", "incr", "touch",
    "exists", "ttl", "clear",
)  # fmt: skip

log = logging.getLogger("cachekit.backend")


class FailOpen:
    """Per-cache failure policy; ``handle`` raises or records, never returns silently."""

    __slots__ = (
        "_clock", "_last_log", "_lock", "_since_log", "enabled", "error", "failures",
        "log_interval", "name",
    )  # fmt: skip

    def __init__(
        self,
        enabled: bool,
        *,
        name: str,
        log_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        error: type[BackendUnavailable] = BackendUnavailable,
    ) -> None:
        self.enabled = enabled
        #: What fail-closed raises: a provider's subclass may also be its driver's error.
        self.error = error
        self.name = name
        self.log_interval = log_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last_log = float("-inf")
        self._since_log = 0
        #: Swallowed failures per operation name (only counted when fail-open).
        self.failures: Counter[str] = Counter(
            dict.fromkeys(COMMON_OPERATIONS, 0) if enabled else ()
        )

    def _after_fork(self) -> None:
        """A forked child's counts are its own (see :mod:`cachekit.forking`), still at 0."""
        self._lock = threading.Lock()
        for operation in self.failures:
            self.failures[operation] = 0

    def handle(self, operation: str, error: BaseException) -> None:
        """Raise ``BackendUnavailable`` (fail-closed) or count and log ``error`` (fail-open)."""
        if not self.enabled:
            if isinstance(error, BackendUnavailable):
                raise error
            raise self.error(f"cache {self.name!r}: {operation} failed: {error}") from error
        with self._lock:
            self.failures[operation] += 1
            self._since_log += 1
            now = self._clock()
            if now - self._last_log < self.log_interval:
                return
            count, self._since_log, self._last_log = self._since_log, 0, now
        log.warning(
            "cache %r: backend unavailable, failing open (%d failed operation(s) since the last "
            "report; latest: %s: %s)",
            self.name,
            count,
            operation,
            error,
        )

    def snapshot(self) -> dict[str, Any]:
        """JSON-friendly counters for ``CacheStats.extra``."""
        return {
            "fail_open_errors_total": sum(self.failures.values()),
            **{f"fail_open_{op}_errors_total": n for op, n in sorted(self.failures.items())},
        }
