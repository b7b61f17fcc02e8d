"""Independent copies of cached values for the in-process backends, at the cost of a copy only
where one is needed.

Django's ``LocMemCache`` pickles every value on write and unpickles it on read, so mutating an
object read back (or the object that was stored) never changes the cached one. Immutable values
need no such protection: ``str``, ``bytes``, numbers, ``None``, dates, ``Decimal``, ``UUID`` and
tuples/frozensets made only of those are stored as they are; anything else is pickled on write
(:class:`Pickled`, a marker ``bytes`` subclass) and unpickled on read. Pickle errors reach the
caller, as they do from ``LocMemCache.set``.
"""

from __future__ import annotations

import datetime
import decimal
import pickle
import uuid
from typing import Any, Final

from django.utils.safestring import SafeString

__all__ = ["IMMUTABLE_TYPES", "Pickled", "freeze", "isolate", "thaw"]

#: Exact types whose instances cannot change after creation (subclasses are not trusted).
IMMUTABLE_TYPES: Final[frozenset[type]] = frozenset(
    {
        str,
        bytes,
        int,
        float,
        bool,
        complex,
        type(None),
        SafeString,
        decimal.Decimal,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        uuid.UUID,
    }
)
_PROTOCOL: Final = pickle.HIGHEST_PROTOCOL


class Pickled(bytes):
    """A stored value that was pickled by :func:`freeze`; :func:`thaw` unpickles it."""

    __slots__ = ()


def _is_immutable(value: Any) -> bool:
    tp = type(value)
    if tp in IMMUTABLE_TYPES:
        return True
    if tp is tuple or tp is frozenset:
        return all(type(item) in IMMUTABLE_TYPES for item in value)
    return False


def freeze(value: Any) -> Any:
    """What to store for ``value``: itself if immutable, else its pickle as :class:`Pickled`."""
    if type(value) in IMMUTABLE_TYPES or _is_immutable(value):
        return value
    return Pickled(pickle.dumps(value, _PROTOCOL))


def thaw(stored: Any) -> Any:
    """The value :func:`freeze` stored: a fresh copy of a pickled one."""
    return pickle.loads(stored) if type(stored) is Pickled else stored


def isolate(value: Any) -> Any:
    """A copy of a mutable ``value`` (a pickle round trip), or ``value`` itself if immutable.

    For caches that must keep live objects (the near cache's L1 holds what its L2 decoded):
    applied on write and on read, it keeps callers and the cache from sharing objects.
    """
    if type(value) in IMMUTABLE_TYPES or _is_immutable(value):
        return value
    return pickle.loads(pickle.dumps(value, _PROTOCOL))
