"""The extension's state and proxy methods: Flask-Caching's ``Cache`` minus the decorators.

Each ``init_app`` validates the app's ``CACHE_*``/``CACHEKIT_*`` config, builds one core cache
(:func:`cachekit.create_cache`) and keeps it in ``app.extensions["cache"][ext]`` as Flask-Caching
does, so one extension object can serve several apps and one app several extension objects.
The proxy methods keep Flask-Caching's signatures and return values (``get`` answers ``None``
on a miss, ``timeout=0`` never expires, ``get_many(*keys)`` returns a list); everything else is
the core's, reachable as :attr:`Cache.cache`.
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, current_app
from flask.globals import _cv_app as _app_context

from cachekit import MISSING
from cachekit import Cache as CoreCache
from cachekit import DistributedCache as CoreDistributedCache
from cachekit.errors import ConfigurationError, SerializationError, UnsupportedOperation

from .calling import RECOMPUTE
from .public import PublicCalls, overrides_proxies, remember_proxies
from .settings import FlaskCacheSettings, flask_timeout_to_ttl

__all__ = ["EMPTY_KEY", "STATE_KEY", "ExtensionBase", "as_key"]

logger = logging.getLogger("cachekit_flask")

#: ``app.extensions`` key of the per-app state (settings, core cache) of each extension object.
STATE_KEY = "cachekit"


class ExtensionBase:
    """Per-app core caches and the proxy methods; the decorators are added by subclasses."""

    def __init__(
        self,
        app: Flask | None = None,
        with_jinja2_ext: bool = True,
        config: dict[str, Any] | None = None,
    ) -> None:
        if not (config is None or isinstance(config, dict)):
            raise ConfigurationError("`config` must be a dict or None", key="config")
        self.with_jinja2_ext = with_jinja2_ext
        self.config = config
        self.source_check: bool = False
        self.hash_method: Callable[..., Any] = hashlib.sha256
        self.enable_signals = False
        self.app: Flask | None = None
        self._apps: weakref.WeakKeyDictionary[Flask, CoreCache] = weakref.WeakKeyDictionary()
        # The app whose core cache was looked up last, and that core: the hot path compares
        # the current app with it instead of reading app.extensions.
        self._last: tuple[Flask | None, CoreCache | None] = (None, None)
        # Whether the proxies the decorators use are overridden (by a subclass, or patched on
        # the class by instrumentation): they then go through them (:mod:`.public`), as
        # Flask-Caching 2.5's do. Looked at again by each init_app.
        self._public_view: PublicCalls | None = None
        self._public_calls = False
        #: What the decorators call for "the core": the core itself, or the public view.
        self._decorator_core: Callable[[], Any] = self._core
        self._see_proxies()
        # Bumped by init_app: a lookup that raced with one does not remember what it read.
        self._generation = 0
        if app is not None:
            self.init_app(app, config)

    def init_app(self, app: Flask, config: dict[str, Any] | None = None) -> None:
        """Validate the config (``ConfigurationError`` names the key) and build the cache."""
        if not (config is None or isinstance(config, dict)):
            raise ConfigurationError("`config` must be a dict or None", key="config")
        merged: dict[str, Any] = dict(app.config)
        merged.update(self.config or {})
        merged.update(config or {})
        settings = FlaskCacheSettings.from_config(merged)
        core = settings.build()
        self._see_proxies()
        self.source_check = settings.source_check
        self.hash_method = settings.hash_method
        self.enable_signals = settings.enable_signals
        self._generation += 1  # before the swap, _last reset after it: see _core
        previous = app.extensions.setdefault("cache", {}).get(self)
        if previous is not None:
            previous.close()
        app.extensions["cache"][self] = core
        app.extensions.setdefault(STATE_KEY, {})[self] = settings
        self._apps[app] = core
        self._last = (None, None)
        if self.with_jinja2_ext:
            from .jinja import JINJA_CACHE_ATTR_NAME, CacheExtension

            setattr(app.jinja_env, JINJA_CACHE_ATTR_NAME, self)
            app.jinja_env.add_extension(CacheExtension)
        from .cli import register_cli

        register_cli(app)
        self.app = app

    # -- the core cache of the current app ---------------------------------------------------

    @property
    def cache(self) -> CoreCache:
        """The core :class:`cachekit.Cache` of the current app (or the last one initialised)."""
        return self._core()

    def _core(self) -> CoreCache:
        context = _app_context.get(None)
        # No app context: the last app initialised, as Flask-Caching does.
        app = self.app if context is None else context.app
        last_app, core = self._last
        if app is last_app and core is not None:
            return core
        if app is None:
            raise RuntimeError("cachekit_flask.Cache is not initialised: call init_app(app) first")
        generation = self._generation
        try:
            core = app.extensions["cache"][self]
        except KeyError:  # another app's cache would be the wrong data: refuse, as Flask-Caching
            raise RuntimeError(
                f"cachekit_flask.Cache is not initialised on app {app.name!r}: "
                "call init_app(app) for it"
            ) from None
        self._last = (app, core)
        if generation != self._generation:  # init_app ran meanwhile: what was read may be old
            self._last = (None, None)
        return core

    def _see_proxies(self) -> None:
        self._public_calls = overrides_proxies(type(self))
        self._decorator_core = self._public_core if self._public_calls else self._core

    def _public_core(self) -> PublicCalls:
        """For a class whose proxy methods are overridden: a core-shaped view over them (one
        per core, so memoize can key by it)."""
        core = self._core()
        public = self._public_view
        if public is None or public._core is not core:
            public = self._public_view = PublicCalls(self, core)
        return public

    def _debug(self) -> bool:
        try:
            return bool(current_app.debug)
        except RuntimeError:
            return bool(self.app is not None and self.app.debug)

    def _distributed(self, core: CoreCache, what: str) -> CoreDistributedCache:
        if isinstance(core, PublicCalls):  # the public set takes tags, if the core does
            self._distributed(core._core, what)
            return core  # type: ignore[return-value]
        if not isinstance(core, CoreDistributedCache):
            raise UnsupportedOperation(
                f"{what} needs a provider with tags and patterns (memory, redis, tiered, file); "
                f"{core.provider_name} has none"
            )
        return core

    # -- Flask-Caching's proxy methods ---------------------------------------------------------
    #
    # Keys: a key that is not a non-empty str (cache.set(user.id, ...), cached(key_prefix=""))
    # is stored under as_key(key), as cachelib's SimpleCache takes any hashable key. What the
    # proxies return names the caller's own keys.

    def get(self, key: str) -> Any:
        """The cached value, or ``None`` on a miss (or an entry this cache cannot decode)."""
        if type(key) is not str or not key:
            key = as_key(key)
        try:
            return self._core().get(key)
        except SerializationError as exc:
            _undecodable(key, exc)
            return None

    def has(self, key: str) -> bool:
        if type(key) is not str or not key:
            key = as_key(key)
        return self._core().exists(key)

    def set(self, key: str, value: Any, timeout: Any = None, *, tags: Iterable[str] = ()) -> bool:
        """Store ``value``; ``timeout=None`` is the default, ``0`` never expires."""
        if type(key) is not str or not key:
            key = as_key(key)
        core = self._core()
        ttl = flask_timeout_to_ttl(timeout)
        if tags:
            self._distributed(core, "tags").set(key, value, ttl, tags=tags)
        else:
            core.set(key, value, ttl)
        return True

    def add(self, key: str, value: Any, timeout: Any = None) -> bool:
        """Store only if absent; whether it was stored."""
        if type(key) is not str or not key:
            key = as_key(key)
        return self._core().add(key, value, flask_timeout_to_ttl(timeout))

    def delete(self, key: str) -> bool:
        if type(key) is not str or not key:
            key = as_key(key)
        return self._core().delete(key)

    def delete_many(self, *keys: str) -> list[str]:
        """Delete ``keys``; the keys now absent (all of them), as Flask-Caching returns."""
        self._core().delete_many(_as_keys(keys))
        return list(keys)

    def unlink(self, *keys: str) -> Any:
        """Flask-Caching's ``unlink``: on Redis (RedisCache, RedisSentinelCache,
        RedisClusterCache) the number of keys removed, ``None`` for no keys, as its RedisCache
        answers; elsewhere :meth:`delete_many` (the keys), its fallback."""
        core = self._core()
        if core.provider_name not in _REDIS_PROVIDERS:
            return self.delete_many(*keys)
        if not keys:
            return None
        return core.delete_many(_as_keys(keys))

    def clear(self) -> bool:
        """Remove this cache's keys (only its own prefix on a shared server)."""
        self._core().clear()
        return True

    def get_many(self, *keys: str) -> list[Any]:
        """Values in the order of ``keys``, ``None`` for each miss."""
        names = _as_keys(keys)
        found = self._found(names)
        return [found.get(name) for name in names]

    def get_dict(self, *keys: str) -> dict[str, Any]:
        """``{key: value or None}`` for every key."""
        names = _as_keys(keys)
        found = self._found(names)
        if names is keys:
            return {key: found.get(key) for key in keys}
        return {key: found.get(name) for key, name in zip(keys, names, strict=True)}

    def _found(self, keys: tuple[str, ...]) -> dict[str, Any]:
        try:
            return self._core().get_many(keys)
        except SerializationError:  # one bad entry: read the others one by one
            found = {key: self.get(key) for key in keys}
            return {key: value for key, value in found.items() if value is not None}

    def set_many(self, mapping: dict[str, Any], timeout: Any = None) -> list[str]:
        """Store every item; the keys that were stored."""
        ttl = flask_timeout_to_ttl(timeout)
        if all(type(key) is str and key for key in mapping):
            failed = set(self._core().set_many(mapping, ttl))
            return [key for key in mapping if key not in failed]
        names = {key: as_key(key) for key in mapping}
        failed = set(self._core().set_many({names[k]: v for k, v in mapping.items()}, ttl))
        return [key for key in mapping if names[key] not in failed]

    def inc(self, key: str, delta: int = 1) -> int:
        if type(key) is not str or not key:
            key = as_key(key)
        return self._core().incr(key, delta)

    def dec(self, key: str, delta: int = 1) -> int:
        if type(key) is not str or not key:
            key = as_key(key)
        return self._core().decr(key, delta)

    # -- what cachekit adds ------------------------------------------------------------------

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        """Remove every key carrying any of ``tags`` (cached views, memoized results...)."""
        return self._distributed(self._core(), "invalidate_tags").invalidate_tags(tags)

    def delete_pattern(self, pattern: str) -> int:
        """Remove the keys matching a Redis glob such as ``view//products*``."""
        return self._distributed(self._core(), "delete_pattern").delete_pattern(pattern)

    def get_stats(self) -> Any:
        """The core's :class:`cachekit.CacheStats` snapshot."""
        return self._core().get_stats()

    def _lookup(self, core: CoreCache, key: str, cache_none: bool) -> tuple[bool, Any]:
        """``(found, value)``; a cached ``None`` is :data:`RECOMPUTE` unless ``cache_none``."""
        if isinstance(core, PublicCalls):  # Flask-Caching's calls: get, and has for a None
            rv = self.get(key)
            if rv is None and not (cache_none and self.has(key)):
                return False, MISSING
            return True, rv
        try:
            rv = core.get(key, MISSING)
        except SerializationError as exc:  # overwritten by the recomputed value
            _undecodable(key, exc)
            return False, RECOMPUTE
        return classify(rv, cache_none)


#: What the empty key ``""`` is stored under (a core key is a non-empty ``str``).
EMPTY_KEY = "<empty>"

#: Providers behind Flask-Caching's Redis backends, whose ``unlink`` answers a count.
_REDIS_PROVIDERS = frozenset({"redis", "redis+cluster"})


def as_key(key: Any) -> str:
    """A Flask-Caching key as the core takes it: a non-``str`` key as ``str(key)`` (so ``1``
    and ``"1"`` name one entry), ``""`` as :data:`EMPTY_KEY`. cachelib's SimpleCache takes any
    hashable key and ``""``; its RedisCache takes ``""`` (and raises ``TypeError`` for others)."""
    if type(key) is str:
        return key or EMPTY_KEY
    return (key if isinstance(key, str) else str(key)) or EMPTY_KEY


def _as_keys(keys: tuple[Any, ...]) -> tuple[str, ...]:
    """:func:`as_key` of each key; ``keys`` itself when they are all non-empty ``str``."""
    for key in keys:
        if type(key) is not str or not key:
            return tuple(as_key(key) for key in keys)
    return keys


def _undecodable(key: str, exc: SerializationError) -> None:
    """An entry this cache cannot decode is a miss, as in Flask-Caching.

    That is what an app meets when it switches from Flask-Caching to cachekit_flask on the same
    Redis keys: the old entries (cachelib's pickle format) read as misses and are overwritten,
    instead of failing every request until they expire.
    """
    logger.debug("cannot decode the entry under %r (%s): treated as a miss", key, exc)


async def aget_decodable(core: CoreCache, key: str) -> Any:
    """``aget(key, MISSING)``, with an undecodable entry read as :data:`RECOMPUTE`."""
    try:
        return await core.aget(key, MISSING)
    except SerializationError as exc:
        _undecodable(key, exc)
        return RECOMPUTE


def classify(rv: Any, cache_none: bool) -> tuple[bool, Any]:
    """``(found, value)`` of a lookup; a cached ``None`` is :data:`RECOMPUTE` unless cache_none."""
    if rv is MISSING or rv is RECOMPUTE:
        return False, rv
    if rv is None and not cache_none:
        return False, RECOMPUTE
    return True, rv


# What the proxies are unless overridden (see overrides_proxies).
remember_proxies(ExtensionBase)
