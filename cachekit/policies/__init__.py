"""Eviction policies of the memory provider, by registry name.

``lru`` is the default and the cheapest; ``adaptive`` (W-TinyLFU) has the best hit ratio on
the measured traces (docs/benchmarks.md); ``lfu`` suits stable popularity; ``ttl`` gives up the
entries closest to expiry first. docs/policies.md says when to choose which.
"""

from __future__ import annotations

from .adaptive import AdaptivePolicy
from .base import EvictionPolicy
from .lfu import LFUPolicy
from .lru import LRUPolicy
from .sketch import FrequencySketch
from .ttl import TTLPolicy

__all__ = [
    "POLICIES",
    "AdaptivePolicy",
    "EvictionPolicy",
    "FrequencySketch",
    "LFUPolicy",
    "LRUPolicy",
    "TTLPolicy",
]

#: Built-in policies by name (the registry in :mod:`cachekit.registry` resolves the same names).
POLICIES: dict[str, type[EvictionPolicy]] = {
    "lru": LRUPolicy,
    "lfu": LFUPolicy,
    "ttl": TTLPolicy,
    "adaptive": AdaptivePolicy,
}
