"""Soonest-to-expire first: when the cache is full, give up what would die soonest anyway.

Entries with an expiry sit on a min-heap of ``(expires_at, seq, key)``; ``seq`` (a write counter)
breaks ties in write order and keeps keys from being compared. Entries without an expiry are
evicted only after every expiring one, in LRU order, so a cache that never uses TTLs behaves as
LRU.

Deletion is lazy: a removed or re-timed key leaves its old heap node behind, recognised as stale
because it is no longer the node recorded for the key, and skipped when popped; the heap is
rebuilt when stale nodes outnumber live ones. Complexity: ``on_insert``/``on_update`` with an
expiry O(log n), ``evict`` O(log n) amortised, ``on_hit`` and ``on_remove`` O(1).
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from typing import TypeAlias

from .base import EvictionPolicy

__all__ = ["TTLPolicy"]

#: Heap nodes tolerated per live expiring entry (plus :data:`HEAP_SLACK`) before a rebuild.
HEAP_SLACK_FACTOR = 2
#: Stale nodes always tolerated, so small caches do not rebuild on every few updates.
HEAP_SLACK = 64

_Node: TypeAlias = tuple[float, int, str]


class TTLPolicy(EvictionPolicy):
    """Evicts the entry closest to expiry; entries that never expire go last, LRU first."""

    name = "ttl"

    def __init__(self, capacity: int | None) -> None:
        super().__init__(capacity)
        self._heap: list[_Node] = []
        self._node_of: dict[str, _Node] = {}  # expiring key -> its live heap node
        self._forever: OrderedDict[str, None] = OrderedDict()  # non-expiring keys, LRU first
        self._seq = itertools.count()

    def on_insert(self, key: str, expires_at: float | None) -> None:
        if expires_at is None:
            self._forever[key] = None
        else:
            self._push(key, expires_at)

    def on_update(self, key: str, expires_at: float | None) -> None:
        node = self._node_of.get(key)
        if node is None:  # was non-expiring
            if expires_at is None:
                self._forever.move_to_end(key)
                return
            del self._forever[key]
            self._push(key, expires_at)
        elif expires_at is None:
            del self._node_of[key]
            self._forever[key] = None
        elif expires_at != node[0]:
            self._push(key, expires_at)

    def on_hit(self, key: str) -> None:
        forever = self._forever
        if key in forever:
            forever.move_to_end(key)

    def on_remove(self, key: str) -> None:
        if self._node_of.pop(key, None) is None:
            del self._forever[key]

    def evict(self) -> str:
        heap, node_of = self._heap, self._node_of
        while heap:
            node = heapq.heappop(heap)
            if node_of.get(node[2]) is node:
                del node_of[node[2]]
                return node[2]
        return self._forever.popitem(last=False)[0]

    def clear(self) -> None:
        self._heap.clear()
        self._node_of.clear()
        self._forever.clear()

    def __len__(self) -> int:
        return len(self._node_of) + len(self._forever)

    def _push(self, key: str, expires_at: float) -> None:
        node = (expires_at, next(self._seq), key)
        self._node_of[key] = node
        heap = self._heap
        heapq.heappush(heap, node)
        if len(heap) > HEAP_SLACK_FACTOR * len(self._node_of) + HEAP_SLACK:
            self._heap = list(self._node_of.values())
            heapq.heapify(self._heap)
