"""The near cache's invalidation protocol: Redis pub/sub between the L1s of every process.

Design
======

The tiered cache (:mod:`.tiered`) keeps a bounded in-process L1 (a
:class:`~cachekit.providers.memory.MemoryCache`) in front of a shared L2 that is the source of
truth. Every write goes to L2 first, then updates or evicts the local L1, then PUBLISHes an
invalidation on a channel all instances of that cache subscribe to; each process evicts what
the message names from its own L1. This is the "broadcasting" flavour of Redis server-assisted
client-side caching, done with plain pub/sub instead of ``CLIENT TRACKING ... BCAST`` [1]_, and
the same write-then-invalidate order as the memcache fleet of [2]_ (invalidate, never update,
remote copies: a delete is idempotent and can be re-applied or reordered harmlessly).

Messages are JSON ``[origin, kind, items]``: ``origin`` is the publishing instance's random id
(an instance skips its own messages: it already applied them), ``kind`` is ``keys``,
``pattern``, ``tags`` or ``clear``. Tags and glob patterns are applied by the receiver's L1,
which stores the tags with each entry, so an invalidation never needs to list the keys.

Why the L1 cannot keep a value forever, and what bounds its staleness:

* **Normal bound: the pub/sub latency.** A reader's copy is evicted when the message of the
  write that superseded it arrives: the write's publish latency plus the subscriber thread's
  wake-up (measured by ``bench/near_cache.py`` with two real processes; see docs/tiered.md).
* **Lost messages.** Redis pub/sub is at-most-once: a subscriber that is disconnected misses
  every message sent meanwhile and Redis never replays them [1]_. So the subscriber's state
  gates the L1: while it is not subscribed (before the first SUBSCRIBE is confirmed, after any
  connection error, after a missed PING reply) the L1 is flushed and bypassed (reads go to L2,
  nothing is filled), and it is flushed once more the moment the subscription is confirmed
  again, because messages may have been lost in between. The Redis docs give the same rule for
  tracking clients: "flush the local cache when the invalidation connection is lost" [1]_.
  A silent connection loss (no RST) is found by a PING sent after :data:`PING_INTERVAL` of
  silence and a reply awaited for :data:`PONG_TIMEOUT`.
* **Hard bound: ``l1_ttl``.** Every L1 entry lives at most ``min(L2 TTL remaining, l1_ttl)``.
  Whatever else goes wrong (a publish that failed while the subscribers stayed connected, a
  writer that bypasses the cache and writes L2 directly), no L1 serves a value older than
  ``l1_ttl``. This is the "expire after write" safety net of near caches such as Caffeine's
  refresh/expiry policies and Hazelcast's near cache ``time-to-live-seconds`` [3]_ [4]_.

The read/invalidate race. A reader that misses L1 reads L2 and then fills L1; an invalidation
can arrive between the two, and filling afterwards would resurrect the old value until
``l1_ttl``. [1]_ describes it for tracking ("the invalidation arrives before the reply") and
[2]_ solves it with leases. The tiered cache uses a lease-like *epoch*: a counter bumped, under
a lock, by every invalidation applied and every local write; a reader notes it before the L2
read and fills L1 (under the same lock) only if it has not moved. A concurrent write then costs
the reader a skipped fill, never a stale entry. The same check guards a writer's own L1 update
against a concurrent write by another thread or process.

References
----------
.. [1] Redis documentation, "Client-side caching in Redis",
   https://redis.io/docs/latest/develop/reference/client-side-caching/
.. [2] R. Nishtala et al., "Scaling Memcache at Facebook", NSDI '13, sections 3.2.1 (leases,
   stale sets) and 4 (invalidation after the write, mcsqueal).
.. [3] Caffeine wiki, "Eviction" (expireAfterWrite) and "Refresh",
   https://github.com/ben-manes/caffeine/wiki
.. [4] Hazelcast documentation, "Near Cache" (invalidation events may be lost; TTL and
   reconciliation bound the staleness).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, NamedTuple

import redis
import redis.exceptions

from .redis_conn import ConnectionSettings, RedisClients

__all__ = ["KINDS", "Invalidation", "InvalidationChannel", "decode", "encode"]

log = logging.getLogger(__name__)

#: Message kinds and what the receiver does with ``items``.
KINDS = frozenset({"keys", "pattern", "tags", "clear"})
#: Longest a ``get_message`` call blocks: bounds how late the thread notices ``stop`` if the
#: wake-up message cannot be sent (server down).
POLL_SECONDS = 0.25
#: Seconds of silence on the subscription after which a PING checks it is still alive.
PING_INTERVAL = 1.0
#: Seconds a PING reply may take before the connection is deemed lost (L1 flushed).
PONG_TIMEOUT = 2.0
#: Longest wait for the SUBSCRIBE confirmations of a (re)connection.
SUBSCRIBE_TIMEOUT = 2.0
#: Reconnection back-off: doubles from the first value up to the second.
BACKOFF = (0.05, 1.0)
#: Seconds between two warnings about failed publishes.
LOG_INTERVAL = 10.0
_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
# A publish (or SUBSCRIBE) can also be refused by a server that is up: Redis 7's default ACL
# (acl-pubsub-default resetchannels) denies channels to a user granted only keys and commands.
_REDIS_ERRORS = (redis.exceptions.RedisError, OSError)


class Invalidation(NamedTuple):
    origin: str
    kind: str
    items: tuple[str, ...]


def encode(origin: str, kind: str, items: Iterable[str] = ()) -> bytes:
    return json.dumps([origin, kind, list(items)], separators=(",", ":")).encode()


def decode(data: bytes | str) -> Invalidation | None:
    """The message, or ``None`` for anything that is not a well-formed invalidation."""
    try:
        origin, kind, items = json.loads(data)
    except (ValueError, TypeError):
        return None
    if (
        not isinstance(origin, str)
        or kind not in KINDS
        or not isinstance(items, list)
        or not all(isinstance(i, str) for i in items)
    ):
        return None
    return Invalidation(origin, kind, tuple(items))


class InvalidationChannel:
    """Publishes invalidations and runs the subscriber thread of one tiered cache instance.

    ``on_message(invalidation)`` is called on the subscriber thread for every message of
    another instance; ``on_state(connected)`` whenever the subscription is confirmed
    (``True``) or lost (``False``). Neither may raise (exceptions are logged).
    Nothing connects before :meth:`start`.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        channel: str,
        origin: str,
        on_message: Callable[[Invalidation], None],
        on_state: Callable[[bool], None],
    ) -> None:
        self.channel = channel
        self.origin = origin
        # Its own channel: close() wakes the thread with a message nobody else receives. An
        # ACL granting only ``channel`` refuses it: the thread then notices stop() by polling.
        self._wake_channel = f"{channel}:wake:{origin}"
        self._wake_refused = False
        self._on_message = on_message
        self._on_state = on_state
        self._publisher = RedisClients(settings)
        # The subscriber must see every connection loss (to flush L1), so no transparent retry.
        self._subscriber = RedisClients(replace(settings, retries=0))
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.connected = False
        self.received = 0
        self.sent = 0
        self.publish_errors = 0
        self.reconnects = 0
        self._last_log = float("-inf")
        # Subscriber failures are logged like publish failures: at most once per LOG_INTERVAL.
        self._sub_last_log = float("-inf")
        self._sub_failures = 0
        self._sub_lost = False

    def _after_fork(self, origin: str) -> None:
        """In a forked child: not subscribed (its thread stayed in the parent), with the child
        cache's own id, so that parent and child apply each other's messages."""
        self.origin = origin
        self._wake_channel = f"{self.channel}:wake:{origin}"
        self._lock = threading.Lock()
        self._thread = None
        self._stop = threading.Event()
        self.connected = False
        self.received = self.sent = self.publish_errors = self.reconnects = 0  # the parent's
        self._publisher._after_fork()
        self._subscriber._after_fork()

    # -- publishing ------------------------------------------------------------------------------

    def publish(self, kind: str, items: Iterable[str] = ()) -> None:
        """Best effort: a failure is counted and logged, never raised (see the module doc)."""
        data = encode(self.origin, kind, items)
        try:
            self._publisher.sync().publish(self.channel, data)
        except _REDIS_ERRORS as exc:
            self._publish_failed(exc)
        else:
            self.sent += 1

    async def apublish(self, kind: str, items: Iterable[str] = ()) -> None:
        data = encode(self.origin, kind, items)
        try:
            await self._publisher.aclient().publish(self.channel, data)
        except _REDIS_ERRORS as exc:
            self._publish_failed(exc)
        else:
            self.sent += 1

    def _publish_failed(self, exc: BaseException) -> None:
        self.publish_errors += 1
        now = time.monotonic()
        if now - self._last_log >= LOG_INTERVAL:
            self._last_log = now
            log.warning(
                "invalidation publish on %r failed (%s); peers' L1 copies expire within l1_ttl",
                self.channel,
                exc,
            )

    # -- the subscriber thread -------------------------------------------------------------------

    def start(self) -> None:
        """Start the subscriber thread if it is not running (idempotent, thread-safe)."""
        with self._lock:
            if self._thread is not None:
                return
            # Each thread its own stop flag: a start() racing a stop() (another thread using
            # the cache while it closes) must not clear the flag the stopping thread waits on.
            self._stop = stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run,
                args=(stop,),
                name=f"cachekit-invalidation:{self.channel}",
                daemon=True,
            )
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def stop(self) -> None:
        """Stop the thread and close every connection; :meth:`start` may be called again."""
        with self._lock:
            thread, self._thread = self._thread, None
            stop = self._stop
        try:
            if thread is not None:
                stop.set()
                # If this fails, the thread notices the stop flag within POLL_SECONDS anyway.
                if not self._wake_refused:
                    with contextlib.suppress(*_REDIS_ERRORS):
                        self._publisher.sync().publish(self._wake_channel, b"")
                thread.join()
        finally:
            self._publisher.close()
            self._subscriber.close()

    async def aclose(self) -> None:
        """Close the running loop's async publishing client."""
        await self._publisher.aclose()

    def _run(self, stop: threading.Event) -> None:
        delay = BACKOFF[0]
        while not stop.is_set():
            pubsub = None
            try:
                pubsub = self._subscriber.sync().pubsub()  # type: ignore[no-untyped-call]
                self._listen(pubsub, stop)
                delay = BACKOFF[0]
            except Exception as exc:
                if not stop.is_set():
                    self._subscriber_failed(exc)
            finally:
                self._set_state(False)
                if pubsub is not None:
                    pubsub.close()
            if stop.wait(delay):
                break
            delay = min(delay * 2, BACKOFF[1])
            self.reconnects += 1

    def _subscriber_failed(self, exc: Exception) -> None:
        """Log a lost subscription at most once per LOG_INTERVAL, with the attempts between:
        a Redis outage retries every second and must not write a line each time."""
        self._sub_failures += 1
        now = time.monotonic()
        if now - self._sub_last_log < LOG_INTERVAL:
            return
        self._sub_last_log = now
        count, self._sub_failures = self._sub_failures, 0
        self._sub_lost = True
        if isinstance(exc, _REDIS_ERRORS):  # the connection, or the server refusing (ACL)
            log.warning(
                "invalidation subscriber of %r lost (%d failed attempt(s) since the last "
                "report; L1 bypassed until resubscribed): %s",
                self.channel,
                count,
                exc,
            )
        else:  # not Redis's doing: a bug here; keep its traceback
            log.error(
                "invalidation subscriber of %r failed (%d failed attempt(s) since the last "
                "report; L1 bypassed until resubscribed)",
                self.channel,
                count,
                exc_info=exc,
            )

    def _subscribe(self, pubsub: Any, channel: str, stop: threading.Event) -> bool:
        """SUBSCRIBE to one channel and wait for its confirmation; ``False`` if stopped.
        Messages read meanwhile are dropped: the L1 is not in use yet (and is flushed when it
        is), so nothing they name can be stale in it."""
        pubsub.subscribe(channel)
        deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
        while True:
            if stop.is_set():
                return False
            if time.monotonic() > deadline:
                raise redis.exceptions.TimeoutError("no SUBSCRIBE confirmation")
            message = pubsub.get_message(timeout=POLL_SECONDS)
            if message is not None and message["type"] == "subscribe":
                return True

    def _listen(self, pubsub: Any, stop: threading.Event) -> None:
        if not self._subscribe(pubsub, self.channel, stop):
            return
        # The wake-up channel apart (one SUBSCRIBE naming both is refused whole by an ACL that
        # grants only the invalidation channel): its refusal only makes stop() wait for the
        # stop-flag poll (POLL_SECONDS) instead of waking the thread.
        if not self._wake_refused:
            try:
                if not self._subscribe(pubsub, self._wake_channel, stop):
                    return
            except redis.exceptions.ResponseError as exc:
                self._wake_refused = True  # not asked again by this instance
                log.info(
                    "SUBSCRIBE to %r refused (%s); close() notices its stop flag by polling",
                    self._wake_channel,
                    exc,
                )
        # Subscribed: from now on every later write's message will reach us.
        self._set_state(True)
        if self._sub_lost:  # the loss was reported: so is its end. The limiter is not reset:
            self._sub_lost = False  # a flapping connection would report every loss otherwise
            log.warning("invalidation subscriber of %r resubscribed; L1 in use again", self.channel)
        ping_sent: float | None = None
        last_seen = time.monotonic()
        while not stop.is_set():
            message = pubsub.get_message(timeout=POLL_SECONDS)
            now = time.monotonic()
            if message is None:
                if ping_sent is None:
                    if now - last_seen >= PING_INTERVAL:
                        pubsub.ping()
                        ping_sent = now
                elif now - ping_sent >= PONG_TIMEOUT:
                    raise redis.exceptions.TimeoutError("no reply to PING")
                continue
            last_seen, ping_sent = now, None
            kind = message["type"]
            if kind == "message":
                channel = message["channel"]
                if channel == self.channel.encode() or channel == self.channel:
                    self._deliver(message["data"])
            elif kind == "subscribe":
                # redis-py re-subscribed after reconnecting on its own: messages may be lost.
                self._set_state(False)
                self._set_state(True)

    def _deliver(self, data: bytes) -> None:
        invalidation = decode(data)
        if invalidation is None:
            log.warning("ignoring a malformed message on %r: %r", self.channel, data[:100])
            return
        if invalidation.origin == self.origin:
            return
        self.received += 1
        try:
            self._on_message(invalidation)
        except Exception:
            log.exception("applying an invalidation from %r failed", self.channel)

    def _set_state(self, connected: bool) -> None:
        self.connected = connected
        try:
            self._on_state(connected)
        except Exception:
            log.exception("invalidation state callback of %r failed", self.channel)
