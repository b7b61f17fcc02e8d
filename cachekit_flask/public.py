"""The decorators' view of the cache when a subclass overrides the proxy methods.

Flask-Caching 2.5 routes ``cached`` and ``memoize`` through the public proxies (``get``, ``has``,
``set``, ``get_many``, ``set_many``, ``delete``, ...), so a subclass that overrides them sees,
and can instrument or alter, the decorators' traffic. cachekit_flask's decorators normally call
the core cache directly (one-round-trip memoized hits, single-flight fills). For a subclass that
overrides any proxy, :class:`PublicCalls` stands in for the core instead: a core-shaped object
whose every call goes through the extension's public methods. What that costs such a subclass:
a miss is computed by each caller that meets it (no single-flight), as in Flask-Caching. The
calls are cachekit's own algorithm made of public methods, not Flask-Caching's sequence: a
memoized function's missing versions are created with ``add`` and renewed with the core's
``touch`` (never read and written back, which could undo a concurrent ``delete_memoized``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from cachekit import DEFAULT

if TYPE_CHECKING:
    from cachekit import Cache as CoreCache

    from .base import ExtensionBase

__all__ = ["PROXIES", "PublicCalls", "overrides_proxies", "remember_proxies"]

#: The proxy methods the decorators use; overriding any of them routes the decorators here.
PROXIES: Final = ("get", "has", "set", "add", "get_many", "set_many", "delete", "delete_many")


_ORIGINAL: dict[str, Any] = {}


def remember_proxies(base: type) -> None:
    """Record ``base``'s own proxy functions, before anything can patch them."""
    _ORIGINAL.update({name: base.__dict__[name] for name in PROXIES})


def overrides_proxies(cls: type) -> bool:
    """Whether ``cls`` has any of :data:`PROXIES` other than the extension's own: overridden
    by a subclass, or patched onto a class by instrumentation."""
    return any(getattr(cls, name) is not _ORIGINAL[name] for name in PROXIES)


def _timeout(ttl: Any) -> Any:
    """A core TTL back as a Flask-Caching timeout (``None``: the default; ``0``: forever)."""
    if ttl is DEFAULT:
        return None
    return 0 if ttl is None else ttl


class PublicCalls:
    """A core-shaped façade over an extension's public proxy methods (see the module)."""

    __slots__ = ("_core", "_ext", "provider_name")

    def __init__(self, ext: ExtensionBase, core: CoreCache) -> None:
        self._ext = ext
        self._core = core
        self.provider_name = "public"  # not an in-process provider: no memoize shortcuts

    def get(self, key: str, default: Any = None) -> Any:
        rv = self._ext.get(key)
        if rv is None and default is not None and not self._ext.has(key):
            return default
        return rv

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(keys)
        return {
            key: value
            for key, value in zip(keys, self._ext.get_many(*keys), strict=True)
            if value is not None
        }

    def exists(self, key: str) -> bool:
        return self._ext.has(key)

    def set(self, key: str, value: Any, ttl: Any = DEFAULT, *, tags: Iterable[str] = ()) -> None:
        if tags:
            self._ext.set(key, value, _timeout(ttl), tags=tags)
        else:
            self._ext.set(key, value, _timeout(ttl))

    def add(self, key: str, value: Any, ttl: Any = DEFAULT) -> bool:
        return bool(self._ext.add(key, value, _timeout(ttl)))

    def set_many(self, mapping: Mapping[str, Any], ttl: Any = DEFAULT) -> list[str]:
        stored = set(self._ext.set_many(dict(mapping), _timeout(ttl)))
        return [key for key in mapping if key not in stored]

    def delete(self, key: str) -> bool:
        return bool(self._ext.delete(key))

    def delete_many(self, keys: Iterable[str]) -> None:
        self._ext.delete_many(*keys)

    def touch(self, key: str, ttl: Any = DEFAULT) -> bool:
        # No proxy renews a TTL: the core does it, as Flask-Caching's backends would.
        return self._core.touch(key, ttl)

    def __getattr__(self, name: str) -> Any:
        # The async twins and anything else the decorators reach for: the core's own.
        return getattr(self._core, name)
