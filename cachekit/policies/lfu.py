"""Least frequently used, in O(1), with aging so that yesterday's favourites can leave.

The structure is Shah, Mitra & Matani's ("An O(1) algorithm for implementing the LFU cache
eviction scheme", 2010): a doubly linked list of frequency buckets in increasing count order,
each holding its keys in LRU order, so the victim - the least recently used of the least
frequent keys - is the first key of the first bucket, and an access moves a key to the next
bucket (creating it if the count is new). Every hook is O(1).

Plain LFU never forgets: a key read a thousand times last week outlives everything read ten
times today. Aging here is TinyLFU's periodic halving, done exactly: every
``AGING_PERIOD_FACTOR x capacity`` accesses each count is halved (keeping at least 1) and the
buckets are rebuilt in one pass over a global recency order, so ties still go to the least
recently used key. Halving was chosen over LFU-DA's dynamic aging (Arlitt et al.) because
LFU-DA's priorities jump by the cache age ``L`` on each access, which needs a priority queue
(O(log n)), while halving keeps counts small integers and the bucket list O(1); the O(n) rebuild
every Θ(n) accesses is amortised O(1) (plus a sort of the distinct counts, which are few).
"""

from __future__ import annotations

from collections import OrderedDict

from .base import EvictionPolicy

__all__ = ["LFUPolicy"]

#: Accesses between two halvings, per entry of capacity: TinyLFU's sample size (10 x capacity),
#: long enough that counts separate hot from cold, short enough that a shift shows within a few
#: turnovers of the cache.
AGING_PERIOD_FACTOR = 10
#: Entries assumed when the capacity is unknown (``capacity=None``) and the cache is smaller.
MIN_AGING_ENTRIES = 64


class _Bucket:
    """The keys with one access count, LRU first; a node of the ascending bucket list."""

    __slots__ = ("count", "keys", "next", "prev")

    def __init__(self, count: int, before: _Bucket | None, after: _Bucket | None) -> None:
        self.count = count
        self.keys: OrderedDict[str, None] = OrderedDict()
        self.prev = before
        self.next = after


class LFUPolicy(EvictionPolicy):
    """O(1) LFU with LRU tie-breaking and periodic halving of every count."""

    name = "lfu"
    update_is_access = True  # an overwrite or touch counts as an access

    def __init__(self, capacity: int | None) -> None:
        super().__init__(capacity)
        self._bucket_of: dict[str, _Bucket] = {}
        self._head: _Bucket | None = None  # the least count
        self._recency: OrderedDict[str, None] = OrderedDict()  # all keys, LRU first
        self._until_aging = self._aging_period()

    def on_insert(self, key: str, expires_at: float | None) -> None:
        head = self._head
        if head is None or head.count != 1:
            head = self._head = _Bucket(1, None, head)
            if head.next is not None:
                head.next.prev = head
        head.keys[key] = None
        self._bucket_of[key] = head
        self._recency[key] = None
        self._tick()

    def on_update(self, key: str, expires_at: float | None) -> None:
        self.on_hit(key)

    def on_hit(self, key: str) -> None:
        bucket = self._bucket_of[key]
        count = bucket.count + 1
        after = bucket.next
        if after is None or after.count != count:
            after = _Bucket(count, bucket, after)
            if after.next is not None:
                after.next.prev = after
            bucket.next = after
        del bucket.keys[key]
        after.keys[key] = None
        self._bucket_of[key] = after
        if not bucket.keys:
            self._unlink(bucket)
        self._recency.move_to_end(key)
        self._tick()

    def on_remove(self, key: str) -> None:
        bucket = self._bucket_of.pop(key)
        del bucket.keys[key]
        if not bucket.keys:
            self._unlink(bucket)
        del self._recency[key]

    def evict(self) -> str:
        bucket = self._head
        if bucket is None:
            raise KeyError("evict() on an empty policy")
        key = bucket.keys.popitem(last=False)[0]
        if not bucket.keys:
            self._unlink(bucket)
        del self._bucket_of[key]
        del self._recency[key]
        return key

    def clear(self) -> None:
        self._bucket_of.clear()
        self._recency.clear()
        self._head = None
        self._until_aging = self._aging_period()

    def __len__(self) -> int:
        return len(self._bucket_of)

    def count(self, key: str) -> int:
        """The current (aged) access count of ``key``."""
        return self._bucket_of[key].count

    # -- internals ------------------------------------------------------------------------------

    def _unlink(self, bucket: _Bucket) -> None:
        before, after = bucket.prev, bucket.next
        if before is None:
            self._head = after
        else:
            before.next = after
        if after is not None:
            after.prev = before

    def _tick(self) -> None:
        self._until_aging -= 1
        if self._until_aging <= 0:
            self._age()

    def _aging_period(self) -> int:
        entries = self.capacity or max(len(self._bucket_of), MIN_AGING_ENTRIES)
        return AGING_PERIOD_FACTOR * entries

    def _age(self) -> None:
        """Halve every count and rebuild the buckets, keeping LRU order within each.

        Only called right after an access, so there is at least one key (and one bucket).
        """
        buckets: dict[int, _Bucket] = {}
        bucket_of = self._bucket_of
        for key in self._recency:  # oldest first, so each new bucket is LRU-ordered
            count = max(1, bucket_of[key].count >> 1)
            bucket = buckets.get(count)
            if bucket is None:
                bucket = buckets[count] = _Bucket(count, None, None)
            bucket.keys[key] = None
            bucket_of[key] = bucket
        previous: _Bucket | None = None
        for count in sorted(buckets):
            bucket = buckets[count]
            bucket.prev = previous
            if previous is None:
                self._head = bucket
            else:
                previous.next = bucket
            previous = bucket
        self._until_aging = self._aging_period()
