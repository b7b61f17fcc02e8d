"""A warm-up callable: ``manage.py cachekit_warm --callable example_site.warm.warm_primes``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .computations import LIMIT, cache_key, count_primes

TIMEOUT = 300


def warm_primes(cache: Any) -> Iterator[str]:
    """Fill the prime counts the site serves; yields each key (the command draws progress)."""
    for limit in (LIMIT // 4, LIMIT // 2, LIMIT):
        cache.set(cache_key(limit), count_primes(limit), timeout=TIMEOUT)
        yield cache_key(limit)
