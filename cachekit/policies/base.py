"""The eviction-policy interface of the memory provider.

The provider owns the entries (key -> value, expiry, size); a policy only orders keys and picks
victims. Every hook is called with the provider's lock held, once per operation, so a policy
needs no locking of its own and must never call back into the cache.

Hot-path hooks (``on_hit`` above all) are looked up once by the provider and called as bound
methods; a policy may bind them to C-implemented methods in ``__init__`` (``LRUPolicy`` binds
``on_hit`` to ``OrderedDict.move_to_end``) to keep a cache hit free of Python frames.
"""

from __future__ import annotations

import abc
from typing import ClassVar

__all__ = ["EvictionPolicy"]


class EvictionPolicy(abc.ABC):
    """Orders the keys of one memory cache and chooses which to evict.

    ``capacity`` is the cache's ``max_entries`` (``None`` when it is bounded by memory only);
    policies that size internal segments from it must still work without it.
    """

    #: Registry name (``"lru"``...).
    name: ClassVar[str] = ""
    #: True when an overwrite or touch means exactly what a read means to this policy (LRU):
    #: the provider then calls ``on_hit(key)`` instead of ``on_update(key, expires_at)``, which
    #: lets a policy keep ``on_update`` out of the hot path.
    update_is_access: ClassVar[bool] = False
    #: True when ``on_hit`` is one C call, atomic under the GIL, that raises ``KeyError`` for a
    #: key the policy no longer holds (LRU's ``OrderedDict.move_to_end``): the provider then
    #: applies a hit in its lock-free read instead of logging it for a replay under the lock.
    hit_is_atomic: ClassVar[bool] = False

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity

    @abc.abstractmethod
    def on_insert(self, key: str, expires_at: float | None) -> None:
        """A new key was stored (it is not yet known to the policy)."""

    @abc.abstractmethod
    def on_update(self, key: str, expires_at: float | None) -> None:
        """An existing key was overwritten or touched (possibly with a new expiry)."""

    @abc.abstractmethod
    def on_hit(self, key: str) -> None:
        """A live key was read."""

    def on_miss(self, key: str) -> None:  # noqa: B027 - optional hook, no-op by default
        """A lookup missed; frequency-based policies record it to judge future admission."""

    @abc.abstractmethod
    def on_remove(self, key: str) -> None:
        """A key left the cache for any reason other than :meth:`evict` (delete, expiry)."""

    @abc.abstractmethod
    def evict(self) -> str:
        """Forget and return the key to evict next; called only while the policy holds keys."""

    @abc.abstractmethod
    def clear(self) -> None:
        """Forget every key."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of keys tracked (equal to the cache's entry count; checked by tests)."""
