"""A reference row for ``bench.django_api``: the least a pure-Python Django memory cache does.

Not a product and not a peer: it shows how fast *any* in-process Django backend written in
Python can be on this interpreter, so the memory backend's ratio to ``LocMemCache`` can be read
against a ceiling. It keeps only what a correct backend cannot drop: Django's key (default key
function, the same cheap validity test cachekit uses), a lock, per-entry expiry, LRU order, the
``MAX_ENTRIES`` bound, and independent copies of mutable values (pickled, as ``LocMemCache``
does). No stats, no eviction policy choice, no tags, no culling frequency, no sweeping of
expired entries that are never read again.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections import OrderedDict
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

_IMMUTABLE = frozenset({bytes, str, int, float, bool, type(None)})
_MISSING = object()


class FloorCache(BaseCache):
    """get/set/delete/clear only (BaseCache refuses the rest): a timing reference."""

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        self._data: OrderedDict[str, tuple[Any, float | None, bool]] = OrderedDict()
        self._lock = threading.Lock()

    def _key(self, key: Any, version: int | None) -> str:
        made = "%s:%s:%s" % (self.key_prefix, self.version if version is None else version, key)  # noqa: UP031
        if len(made) > 250 or " " in made or not made.isprintable():
            self.validate_key(made)
        return made

    def set(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        made = self._key(key, version)
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        expires = None if timeout is None else time.monotonic() + timeout
        copied = type(value) not in _IMMUTABLE
        if copied:
            value = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        data = self._data
        with self._lock:
            data[made] = (value, expires, copied)
            data.move_to_end(made)
            if len(data) > self._max_entries:
                data.popitem(last=False)

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        made = self._key(key, version)
        with self._lock:
            entry = self._data.get(made, _MISSING)
            if entry is _MISSING:
                return default
            value, expires, copied = entry  # type: ignore[misc]
            if expires is not None and expires <= time.monotonic():
                del self._data[made]
                return default
            self._data.move_to_end(made)
        return pickle.loads(value) if copied else value

    def delete(self, key: Any, version: int | None = None) -> bool:
        with self._lock:
            return self._data.pop(self._key(key, version), None) is not None

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
