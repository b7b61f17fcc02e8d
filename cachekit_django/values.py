"""Independent copies of cached values for the in-process backends, at the cost of a copy only
where one is needed.

Django's ``LocMemCache`` pickles every value on write and unpickles it on read, so mutating an
object read back (or the object that was stored) never changes the cached one. Immutable values
need no such protection: ``str``, ``bytes``, numbers, ``None``, dates, ``Decimal``, ``UUID`` and
tuples/frozensets made only of those are stored as they are. Plain data (``dict``/``list`` of
such values and of further plain ``dict``/``list``, what views cache: rows, JSON-like documents)
is stored as a private copy (:class:`Tree`) that each read copies container by container, about
five times cheaper than unpickling and the same result for such values. Anything else is pickled
on write (:class:`Pickled`, a marker ``bytes`` subclass) and unpickled on read. Pickle errors
reach the caller, as they do from ``LocMemCache.set``.
"""

from __future__ import annotations

import datetime
import decimal
import pickle
import sys
import uuid
from typing import Any, Final

from django.utils.safestring import SafeString

__all__ = ["IMMUTABLE_TYPES", "Pickled", "Tree", "freeze", "isolate", "thaw"]

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
_IMMUTABLE: Final = IMMUTABLE_TYPES
_getsizeof = sys.getsizeof


class Pickled(bytes):
    """A stored value that was pickled by :func:`freeze`; :func:`thaw` unpickles it."""

    __slots__ = ()


#: Containers past this many items (all levels) are pickled: the walk that proves a value plain
#: is interpreted Python, while pickle's is C, so a big value pickles faster than it is walked.
TREE_MAX_ITEMS: Final = 64


class Tree:
    """Plain data stored as a private copy: ``copy()`` rebuilds an independent one by copying
    each container (``dict.copy``/``list.copy``, in C), never the immutable leaves.

    ``inner`` lists the containers below the root in walk order as ``(parent, key)``: the
    parent's index among the containers already copied (0 is the root) and the key or index of
    the child in it. Pickling a tree pickles the plain value it holds (the gRPC service sends a
    Django memory cache's values that way).

    The immutable leaves are shared, as a bare immutable value always was here; the one way to
    tell is a NaN float, which equals itself inside a container only as the same object
    (``[nan] == [nan]`` holds for a tree's copy, not for an unpickled one).
    """

    __slots__ = ("inner", "root")

    def __init__(self, root: dict[Any, Any] | list[Any], inner: tuple[tuple[int, Any], ...]):
        self.root = root
        self.inner = inner

    def copy(self) -> Any:
        root = self.root.copy()
        if not self.inner:
            return root
        made: list[Any] = [root]
        for parent, key in self.inner:
            container = made[parent]
            child = container[key].copy()
            container[key] = child
            made.append(child)
        return root

    def __reduce__(self) -> tuple[type, tuple[Any]]:
        return type(self.root), (self.copy(),)

    def __sizeof__(self) -> int:
        # What the memory provider's sizers charge (max_memory_bytes): the containers, their
        # keys and leaves, as a deep walk of the unwrapped value would count them.
        total = object.__sizeof__(self)
        stack: list[Any] = [self.root]
        while stack:
            container = stack.pop()
            total += container.__sizeof__()
            if type(container) is dict:
                total += sum(map(_leaf_size, container))
                items: Any = container.values()
            else:
                items = container
            for item in items:
                if type(item) is dict or type(item) is list:
                    stack.append(item)
                else:
                    total += _leaf_size(item)
        return total

    def __repr__(self) -> str:
        return f"Tree({self.root!r})"


def _leaf_size(leaf: Any) -> int:
    """An immutable leaf's size, with what a tuple or frozenset leaf holds."""
    if type(leaf) is tuple or type(leaf) is frozenset:
        return _getsizeof(leaf) + sum(map(_leaf_size, leaf))
    return _getsizeof(leaf)


def plant(value: dict[Any, Any] | list[Any]) -> Tree | None:
    """A :class:`Tree` holding a copy of ``value`` if it is plain data, else ``None``.

    Plain means exact ``dict``/``list`` containers, immutable keys, immutable leaves, no
    container reached twice (a pickle round trip keeps such sharing and cycles, a tree would
    not), and at most :data:`TREE_MAX_ITEMS` items in all.

    One pass that copies each container first (``dict.copy``/``list.copy``: one C call, a
    snapshot no other thread can change halfway) and then checks the copy, putting its
    children's copies in place: what is stored is exactly what was checked, however the caller's
    value changes meanwhile (another thread's write, a hook run by a type check). One plain
    loop per container: set operations over ``map(type, ...)`` measured slower for the small
    values caches hold.
    """
    if len(value) > TREE_MAX_ITEMS:  # before copying a big value only to pickle it
        return None
    root = value.copy()
    made: list[Any] = [root]
    inner: list[tuple[int, Any]] = []
    seen: set[int] | None = None
    budget = TREE_MAX_ITEMS
    index = 0
    while index < len(made):
        container = made[index]  # a private copy: nobody else changes it
        budget -= len(container)
        if budget < 0:
            return None
        if type(container) is dict:
            for key in container:
                if type(key) not in _IMMUTABLE and not _is_immutable(key):
                    return None
            pairs: Any = container.items()
        else:
            pairs = enumerate(container)
        for key, item in pairs:
            if type(item) in _IMMUTABLE:
                continue
            if type(item) is dict or type(item) is list:
                if seen is None:
                    seen = {id(value)}
                if id(item) in seen:
                    return None
                seen.add(id(item))
                if len(item) > budget:
                    return None
                child = item.copy()
                container[key] = child  # same key, new value: the walk is not disturbed
                inner.append((index, key))
                made.append(child)
            elif not _is_immutable(item):
                return None
        index += 1
    return Tree(root, tuple(inner))


def _is_immutable(value: Any) -> bool:
    tp = type(value)
    if tp in IMMUTABLE_TYPES:
        return True
    if tp is tuple or tp is frozenset:
        return all(type(item) in IMMUTABLE_TYPES for item in value)
    return False


def freeze(value: Any) -> Any:
    """What to store for ``value``: itself if immutable, a :class:`Tree` if plain data, else its
    pickle as :class:`Pickled`."""
    tp = type(value)
    if tp in IMMUTABLE_TYPES or _is_immutable(value):
        return value
    if tp is dict or tp is list:
        tree = plant(value)
        if tree is not None:
            return tree
    return Pickled(pickle.dumps(value, _PROTOCOL))


def thaw(stored: Any) -> Any:
    """The value :func:`freeze` stored: a fresh copy of a tree or a pickled one."""
    tp = type(stored)
    if tp is Tree:
        return stored.copy()
    return pickle.loads(stored) if tp is Pickled else stored


def isolate(value: Any) -> Any:
    """A copy of a mutable ``value`` (a pickle round trip), or ``value`` itself if immutable.

    For caches that must keep live objects (the near cache's L1 holds what its L2 decoded):
    applied on write and on read, it keeps callers and the cache from sharing objects.
    """
    if type(value) in IMMUTABLE_TYPES or _is_immutable(value):
        return value
    return pickle.loads(pickle.dumps(value, _PROTOCOL))
