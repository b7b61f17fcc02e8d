"""Least recently used: evict the key read or written longest ago."""

from __future__ import annotations

from collections import OrderedDict

from .base import EvictionPolicy

__all__ = ["LRUPolicy"]


class LRUPolicy(EvictionPolicy):
    """LRU over an ``OrderedDict`` used as a linked list (oldest first).

    Every hook is bound straight to an ``OrderedDict`` C method, so LRU bookkeeping adds no
    Python frame to a cache hit.
    """

    name = "lru"
    update_is_access = True
    hit_is_atomic = True  # on_hit is OrderedDict.move_to_end

    def __init__(self, capacity: int | None) -> None:
        super().__init__(capacity)
        order: OrderedDict[str, float | None] = OrderedDict()
        self._order = order
        self.on_hit = order.move_to_end  # type: ignore[method-assign]
        self.on_remove = order.__delitem__  # type: ignore[method-assign,assignment]
        # key -> expires_at: the value is unused, but it lets insertion be a C call too.
        self.on_insert = order.__setitem__  # type: ignore[method-assign,assignment]

    def on_insert(self, key: str, expires_at: float | None) -> None:
        self._order[key] = None

    def on_update(self, key: str, expires_at: float | None) -> None:
        self._order.move_to_end(key)

    def on_hit(self, key: str) -> None:
        self._order.move_to_end(key)

    def on_remove(self, key: str) -> None:
        del self._order[key]

    def evict(self) -> str:
        return self._order.popitem(last=False)[0]

    def clear(self) -> None:
        self._order.clear()

    def __len__(self) -> int:
        return len(self._order)
