"""Adaptive W-TinyLFU: Caffeine's segmented design, with the window sized by ghost feedback.

Design (the layout is Caffeine's; see docs/policies.md for the measurements behind it):

* **Admission window** - an LRU of about 1% of the entries that every new key enters. It lets
  bursts of new keys (recency) build up a frequency before they must prove themselves.
* **Main space** - a segmented LRU: *probation* (entries admitted but not read since) and
  *protected* (entries read again in main, :data:`PROTECTED_RATIO` of main). A probation hit
  promotes to protected; protected overflow is demoted to the tail of probation.
* **TinyLFU admission** - when the window overflows, its LRU entry (the *candidate*) moves to
  probation; when the cache must evict, the candidate fights probation's LRU entry (the
  *victim*) and the one the :class:`~cachekit.policies.sketch.FrequencySketch` has seen less
  often is evicted (ties keep the incumbent). This is what makes scans and loops larger than
  the cache cheap: one-hit wonders never displace the frequent working set.
* **Window sizing by ghost feedback** - the best window size depends on the workload: near 0
  for frequency-skewed or looping traces, near all of the cache for recency-only traces. Caffeine
  adapts it with a hill climber over sampled hit rates (Einziger, Eytan, Friedman & Manes,
  "Adaptive Software Cache Management", Middleware 2018). Measured on the bench traces, the
  climber adapted too slowly on short traces: with Caffeine's constants it lost up to 11 points
  to LRU on the recency-only trace, and no tuning of its sample and step sizes kept it within
  0.5 points of LRU everywhere while also winning on the frequency traces. This policy instead
  applies ARC's adaptation rule (Megiddo & Modha, FAST 2003) to the window/main split: it
  remembers the hashes of recently evicted keys in two *ghost* lists, one for candidates the
  admission rejected and one for victims evicted from main. A miss on a rejected candidate
  means a larger window would have hit, so the window grows by one entry; a miss on a main
  victim means a larger main would have hit, so it shrinks by one. The signal arrives on every
  relevant miss instead of once per sample, which is what the short traces need.

The frequency sketch is the TinyLFU paper's (Einziger, Friedman & Manes, "TinyLFU: A Highly
Efficient Cache Admission Policy", ACM Transactions on Storage 2017), sized and aged as in
Caffeine (ben-manes/caffeine, ``BoundedLocalCache`` and ``FrequencySketch``). No doorkeeper:
Caffeine does not use one in the cache either, and it would add a probe to every access.

Unknown capacity (``capacity=None``, a memory-bounded cache): until the first eviction every
entry stays in the window (it is then an LRU). The first :meth:`evict` sizes the segments,
ghosts and sketch from the entry count at that moment, and every that-many evictions the count
is measured again and the segments re-sized (keeping the window's share) if it moved by more
than :data:`RESIZE_TOLERANCE`.

Complexity: every hook is O(1); a halving of the sketch is one C pass over it, once per
``10 x capacity`` accesses.
"""

from __future__ import annotations

import sys
from collections import OrderedDict

from .base import EvictionPolicy
from .sketch import FrequencySketch

__all__ = ["AdaptivePolicy"]

#: Window share of a new cache: Caffeine's 1%, which the ghost feedback then moves.
WINDOW_INITIAL_RATIO = 0.01
#: Protected share of the main space (Caffeine's 80%); the rest is probation.
PROTECTED_RATIO = 0.80
#: Each ghost list remembers the hashes of this share of the capacity, so both together hold one
#: capacity's worth, as ARC's directory does (c resident + c ghosts). A full capacity per list
#: measured 0.45 points worse (stale ghosts keep pushing the window), a quarter 0.1 better:
#: within what choosing on 15 cases can tell, so ARC's proportion is kept.
GHOST_RATIO = 0.5
#: Entries the window moves per ghost hit: ARC's unit step. ARC's ratio-scaled step and a step
#: of 2 measured no better.
WINDOW_STEP = 1
#: Smallest window, so that the key just written is never the one evicted (a set followed by a
#: get must hit); a window of 0 measured no better anyway.
MIN_WINDOW = 1
#: Capacity to size the sketch for before a ``capacity=None`` cache first evicts.
UNSIZED_SKETCH_CAPACITY = 64
#: Relative change of the measured entry count that re-sizes a ``capacity=None`` cache.
RESIZE_TOLERANCE = 0.125

_UNBOUNDED = sys.maxsize
_ABSENT = 0


class AdaptivePolicy(EvictionPolicy):
    """W-TinyLFU (window LRU + TinyLFU admission + segmented LRU) with ghost-sized window."""

    name = "adaptive"
    update_is_access = True  # an overwrite or touch counts as an access

    def __init__(self, capacity: int | None) -> None:
        super().__init__(capacity)
        self._window: OrderedDict[str, None] = OrderedDict()
        self._probation: OrderedDict[str, None] = OrderedDict()
        self._protected: OrderedDict[str, None] = OrderedDict()
        # Hashes, not keys: a ghost must not keep a large key string alive.
        self._window_ghost: OrderedDict[int, None] = OrderedDict()
        self._main_ghost: OrderedDict[int, None] = OrderedDict()
        self._sketch = FrequencySketch(capacity or UNSIZED_SKETCH_CAPACITY)
        self._increment = self._sketch.increment
        self._candidate: str | None = None
        self._last_miss: str | None = None
        self._size = 0  # the capacity the segments are sized for; 0 = not sized yet
        self._window_max = _UNBOUNDED
        self._protected_max = _UNBOUNDED
        self._ghost_max = 0
        self._resize_countdown = 0
        if capacity is not None:
            self._resize(capacity, max(MIN_WINDOW, round(capacity * WINDOW_INITIAL_RATIO)))

    # -- hooks ----------------------------------------------------------------------------------

    def on_insert(self, key: str, expires_at: float | None) -> None:
        if key != self._last_miss:  # a demand fill was already counted by on_miss
            self._increment(key)
        self._last_miss = None
        window = self._window
        window[key] = None
        if len(window) > self._window_max:
            candidate = window.popitem(last=False)[0]
            self._probation[candidate] = None
            self._candidate = candidate

    def on_update(self, key: str, expires_at: float | None) -> None:
        self.on_hit(key)

    def on_hit(self, key: str) -> None:
        self._increment(key)
        protected = self._protected
        if key in protected:
            protected.move_to_end(key)
            return
        window = self._window
        if key in window:
            window.move_to_end(key)
            return
        probation = self._probation
        del probation[key]
        protected[key] = None
        if len(protected) > self._protected_max:
            probation[protected.popitem(last=False)[0]] = None

    def on_miss(self, key: str) -> None:
        self._increment(key)
        self._last_miss = key
        digest = hash(key)
        window_ghost = self._window_ghost
        if digest in window_ghost:
            del window_ghost[digest]
            self._set_window(self._window_max + WINDOW_STEP)
            return
        main_ghost = self._main_ghost
        if digest in main_ghost:
            del main_ghost[digest]
            self._set_window(self._window_max - WINDOW_STEP)

    def on_remove(self, key: str) -> None:
        if key == self._candidate:
            self._candidate = None
        # Values are None, so pop(key, _ABSENT) is None exactly when the key was in that segment.
        if (
            self._window.pop(key, _ABSENT) is not None
            and self._probation.pop(key, _ABSENT) is not None
        ):
            del self._protected[key]

    def evict(self) -> str:
        if self._size == 0 or (self.capacity is None and self._countdown()):
            self._resize_unbounded()
        probation = self._probation
        candidate = self._candidate
        if candidate is not None:
            self._candidate = None
            if candidate in probation:
                victim = next(iter(probation))
                if victim != candidate:
                    frequency = self._sketch.frequency
                    if frequency(candidate) > frequency(victim):
                        del probation[victim]
                        self._remember(self._main_ghost, victim)
                        return victim
                    del probation[candidate]
                    self._remember(self._window_ghost, candidate)
                    return candidate
        if probation:
            key = probation.popitem(last=False)[0]
        elif self._protected:
            key = self._protected.popitem(last=False)[0]
        else:
            return self._window.popitem(last=False)[0]
        self._remember(self._main_ghost, key)
        return key

    def clear(self) -> None:
        """Forget every key; the learned window size and the sketch's history are kept."""
        self._window.clear()
        self._probation.clear()
        self._protected.clear()
        self._window_ghost.clear()
        self._main_ghost.clear()
        self._candidate = self._last_miss = None

    def __len__(self) -> int:
        return len(self._window) + len(self._probation) + len(self._protected)

    # -- introspection (tests, docs) --------------------------------------------------------------

    @property
    def sized_for(self) -> int:
        """The entry count the segments are sized for (0 until a ``capacity=None`` cache evicts)."""
        return self._size

    @property
    def window_size(self) -> int:
        """The window's current target size in entries (``sys.maxsize`` before sizing)."""
        return self._window_max

    def segments(self) -> tuple[list[str], list[str], list[str]]:
        """Keys of the window, probation and protected segments, each in LRU-first order."""
        return list(self._window), list(self._probation), list(self._protected)

    # -- sizing -----------------------------------------------------------------------------------

    def _remember(self, ghost: OrderedDict[int, None], key: str) -> None:
        ghost[hash(key)] = None
        if len(ghost) > self._ghost_max:
            ghost.popitem(last=False)

    def _set_window(self, window_max: int) -> None:
        """Move the window/main split; segments shrink at once, the window grows lazily."""
        size = self._size
        window_max = max(MIN_WINDOW, min(window_max, size - 1))
        self._window_max = window_max
        self._protected_max = int(PROTECTED_RATIO * (size - window_max))
        window, probation, protected = self._window, self._probation, self._protected
        while len(window) > window_max:
            probation[window.popitem(last=False)[0]] = None
        while len(protected) > self._protected_max:
            probation[protected.popitem(last=False)[0]] = None

    def _resize(self, size: int, window_max: int) -> None:
        size = max(size, 1)
        self._size = size
        self._ghost_max = max(1, int(GHOST_RATIO * size))
        for ghost in (self._window_ghost, self._main_ghost):
            while len(ghost) > self._ghost_max:
                ghost.popitem(last=False)
        self._sketch.ensure_capacity(size)
        self._resize_countdown = size
        self._set_window(window_max)

    def _countdown(self) -> bool:
        """Count one eviction of a ``capacity=None`` cache; true when it is time to re-measure."""
        self._resize_countdown -= 1
        return self._resize_countdown <= 0

    def _resize_unbounded(self) -> None:
        """Size (or re-size) from the entry count of a cache that is evicting right now."""
        measured = len(self)
        size = self._size
        if size == 0:
            self._resize(measured, max(MIN_WINDOW, round(measured * WINDOW_INITIAL_RATIO)))
        elif abs(measured - size) > RESIZE_TOLERANCE * size:
            self._resize(measured, round(self._window_max * measured / size))
        else:
            self._resize_countdown = size
