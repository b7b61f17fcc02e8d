"""``get``/``aget`` timed on one call in ``stats_sample_every``: network and file providers.

A network ``get`` (or a file read) costs tens of microseconds, so the sampled timing (two
``perf_counter`` calls and a short lock, one call in 64 by default) is noise beside it, and the
unsampled calls pay one ``next()`` and a bit test. The memory provider does not use this: its
sampled calls take its own lock and path (see :mod:`cachekit.providers.memory`).

A provider lists :class:`TimedGets` first among its bases, implements ``_get``/``_aget`` instead
of ``get``/``aget``, and keeps a :class:`~cachekit.metrics.latency.GetTimer` in ``_get_timer``.
A call that raises is timed too: a caller waiting out a connect timeout waited that long.
"""

from __future__ import annotations

import abc
import time
from typing import Any

from ..interfaces import Cache
from ..metrics.latency import GetTimer

__all__ = ["TimedGets"]


class TimedGets(Cache):
    """The public ``get``/``aget`` of a provider whose reads are ``_get``/``_aget``."""

    __slots__ = ()

    _get_timer: GetTimer

    @abc.abstractmethod
    def _get(self, key: str, default: Any) -> Any: ...

    @abc.abstractmethod
    async def _aget(self, key: str, default: Any) -> Any: ...

    def get(self, key: str, default: Any = None) -> Any:
        timer = self._get_timer
        if next(timer.ticks) & timer.mask:
            return self._get(key, default)
        t0 = time.perf_counter()
        try:
            return self._get(key, default)
        finally:
            timer.observe_since(t0)

    async def aget(self, key: str, default: Any = None) -> Any:
        timer = self._get_timer
        if next(timer.ticks) & timer.mask:
            return await self._aget(key, default)
        t0 = time.perf_counter()
        try:
            return await self._aget(key, default)
        finally:
            timer.observe_since(t0)
