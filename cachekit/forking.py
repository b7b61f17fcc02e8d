"""Caches made safe to use on both sides of a ``fork()``.

A process that forks after using a cache (gunicorn ``--preload``, uWSGI without ``lazy-apps``,
Celery's prefork pool, ``multiprocessing`` with the fork start method) hands its child copies of
its sockets, its per-thread state and its locks, but not its other threads. Left alone, the
child would share memcached connections with its parent (two processes reading replies from one
socket: a ``get`` answered with another key's value), keep a near cache whose invalidation
subscriber thread did not survive the fork (and whose instance id its parent shares, so each
would skip the other's messages as its own), and wait forever on a lock that some other thread
of the parent held at the instant of the fork.

Every :class:`~cachekit.interfaces.Cache` registers itself here; ``os.register_at_fork`` calls
each live one's ``_after_fork()`` in the child, before the child runs anything else, which
drops what belongs to the parent (connections are reopened on next use) and replaces its locks.
Nothing is closed: a connection closed in the child would be torn down under the parent, and a
``QUIT`` would end the parent's session. redis-py's connection pools already notice a new pid at
every checkout, so the Redis providers only replace their locks (their asyncio clients stay,
unused: they belong to the parent's event loops, which do not survive a fork).

Then every live one that has a ``reset_stats()`` is reset: its counters (hits, misses, sets,
evictions...) count this process's events, and a child that kept its parent's would report them
as its own (each worker of a ``--preload`` server exporting the parent's count, which Prometheus
then sums once per worker). ``reset_stats()`` zeroes them and restarts ``started_at``, the
exported ``_created``, so the child's series start where a fresh process's would. The data stays:
a memory cache's inherited entries are really in the child, and its items and memory figures
describe them. This runs after every ``_after_fork()``, so each reset takes replaced locks.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Protocol

__all__ = ["ForkAware", "register"]

log = logging.getLogger(__name__)


class ForkAware(Protocol):
    def _after_fork(self) -> None: ...


_live: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def register(obj: ForkAware) -> None:
    """Call ``obj._after_fork()`` in every child forked while ``obj`` is alive."""
    _live.add(obj)


def _after_fork_in_child() -> None:
    live = list(_live)
    forked = []
    for obj in live:
        try:
            obj._after_fork()
        except Exception:  # one cache's failure must not leave the others unreset
            log.exception("resetting %r after fork failed", obj)
        else:
            forked.append(obj)
    for obj in forked:  # not one whose locks may still be the parent's
        reset_stats = getattr(obj, "reset_stats", None)
        if reset_stats is None:
            continue
        try:
            reset_stats()
        except Exception:
            log.exception("zeroing the counters of %r after fork failed", obj)


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
