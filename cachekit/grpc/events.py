"""Invalidation events of a namespace, fanned out to ``Watch`` subscribers.

Each subscriber has a bounded queue. Publishing never waits: when a subscriber's queue is full,
its pending events are dropped and replaced by one ``OVERFLOW`` event, which tells the client
to drop its whole near cache. A slow subscriber therefore costs bounded memory and never
silently misses an invalidation (it learns that it missed some). The terminal event,
``NAMESPACE_DELETED``, is never dropped: a full queue is replaced by ``OVERFLOW`` followed by
it, and nothing is queued after it (the stream ends there).

Writes that remove keys the server cannot name publish a ``CLEAR`` instead of per-key events:
a pattern delete carries its ``pattern``; a tag invalidation carries its ``tags`` and an empty
pattern (the providers count the keys they remove by tag, they do not list them), which a near
cache that does not record tags reads, as old clients do, as "drop everything".
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Final

__all__ = ["Event", "EventHub", "EventKind", "Subscription"]


class EventKind:
    """The values of ``cachekit.v1.EventKind`` (kept here so this module needs no protobuf)."""

    SET = 1
    DELETE = 2
    TOUCH = 3
    CLEAR = 4
    OVERFLOW = 5
    NAMESPACE_DELETED = 6


@dataclass(frozen=True, slots=True)
class Event:
    kind: int
    key: str = ""
    pattern: str = ""
    time: float = field(default_factory=time.time)
    #: The invalidated tags of a ``CLEAR`` made by a tag invalidation (sorted).
    tags: tuple[str, ...] = ()


#: Internal, never sent: the server is stopping, so the stream ends (status OK) at once instead
#: of holding shutdown for its whole grace period; clients reconnect elsewhere.
SERVER_STOPPING: Final = -1
_TERMINAL: Final = frozenset({EventKind.NAMESPACE_DELETED, SERVER_STOPPING})


class Subscription:
    """One ``Watch`` stream's queue."""

    __slots__ = ("closed", "dropped", "queue")

    def __init__(self, size: int) -> None:
        # Two places at least (EventHub checks): an OVERFLOW and the terminal event always fit.
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=size)
        #: Overflows so far (each one replaced the pending events with an OVERFLOW event).
        self.dropped = 0
        #: Whether the terminal event is queued: later events are not (the stream ends there).
        self.closed = False

    def offer(self, event: Event) -> None:
        if self.closed:
            return
        terminal = event.kind in _TERMINAL
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.dropped += 1
            self.queue.put_nowait(Event(EventKind.OVERFLOW))
            if terminal:
                self.queue.put_nowait(event)
        self.closed = terminal

    def stop(self) -> None:
        """End the stream ahead of its backlog (the server is stopping): pending events are
        replaced by one ``OVERFLOW``, as when the queue fills, so the subscriber is sent at most
        that before the stream ends, and still learns that it missed some."""
        if not self.queue.empty():
            while not self.queue.empty():
                self.queue.get_nowait()
            self.dropped += 1
            self.queue.put_nowait(Event(EventKind.OVERFLOW))
        self.queue.put_nowait(Event(SERVER_STOPPING))
        self.closed = True

    async def next(self) -> Event:
        return await self.queue.get()


class EventHub:
    """The subscribers of one namespace; used from the server's event loop only."""

    def __init__(self, queue_size: int = 1024) -> None:
        if queue_size < 2:
            raise ValueError("a watch queue must hold at least 2 events")
        self.queue_size = queue_size
        self._subscribers: set[Subscription] = set()

    def subscribe(self) -> Subscription:
        sub = Subscription(self.queue_size)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def __len__(self) -> int:
        return len(self._subscribers)

    def end_all(self) -> None:
        """End every stream (the server is stopping): each one's next event is the stop, ahead
        of any backlog. A handler blocked sending (its client does not read) does not get there;
        the server cancels those (``CacheServer.stop``)."""
        for sub in self._subscribers:
            sub.stop()

    def publish(
        self, kind: int, key: str = "", pattern: str = "", tags: tuple[str, ...] = ()
    ) -> None:
        if not self._subscribers:
            return
        event = Event(kind, key, pattern, tags=tags)
        for sub in self._subscribers:
            sub.offer(event)

    def publish_keys(self, kind: int, keys: list[str]) -> None:
        if self._subscribers:
            for key in keys:
                self.publish(kind, key)
