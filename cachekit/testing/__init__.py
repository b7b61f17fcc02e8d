"""Test support shipped with cachekit, for its own suite and for third-party providers.

* :class:`~cachekit.testing.contract.CacheContract` and
  :class:`~cachekit.testing.contract.DistributedCacheContract`: the behaviour contract, written
  once; a provider's test class subclasses them and supplies a ``make_cache`` fixture.
* :class:`~cachekit.testing.clock.FakeClock`: move time in TTL tests instead of sleeping.
* :mod:`cachekit.testing.servers`: real ``redis-server``/``memcached`` processes on free ports.

The contract modules import pytest; importing this package does not.
"""

from __future__ import annotations

from .clock import FakeClock

__all__ = ["FakeClock"]
