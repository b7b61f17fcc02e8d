"""``Cache.cached``: a view (or any function) cached under one key, Flask-Caching's formats.

The key is ``key_prefix % request.path`` (``view/%s`` by default), or with
``query_string=True`` the prefix followed by a hash of the sorted query arguments. What is
decided by the options alone (which callables take arguments, whether the prefix has ``%s``) is
decided once, when the function is decorated. A miss goes through the core's ``get_or_set``:
one computation per key at a time in the process, and across processes on Redis (the
provider's stampede lock). The call that computes returns its own value and leaves it stored,
as Flask-Caching does, even when a nested call with the same key stored another first.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from flask import Flask, g, request, url_for
from werkzeug.exceptions import HTTPException

from cachekit import MISSING
from cachekit.errors import BackendUnavailable, CacheError
from cachekit.interfaces import Cache as CoreBase
from cachekit.interfaces import DistributedCache as CoreDistributedBase
from cachekit.interfaces import check_tags
from cachekit.sentinels import DEFAULT
from cachekit.ttl import to_seconds

from .base import EMPTY_KEY, ExtensionBase, aget_decodable, as_key, classify
from .calling import (
    RECOMPUTE,
    ComputeOwn,
    NotStored,
    Predicate,
    StalePredicate,
    StoreWith,
    filter_value,
    join_generator,
    optional,
    own_timeout,
)
from .keys import QueryArgs, Signature, query_args_as_pairs
from .protocols import CachedFunction
from .public import PublicCalls
from .settings import flask_timeout_to_ttl
from .signals import cache_view_hit, cache_view_miss, emit

if TYPE_CHECKING:
    from cachekit import Cache as CoreCache

__all__ = ["CachedMixin"]

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("cachekit_flask")


class _SourceHash:
    """The hex digest of a function's source per hash method, computed on first use."""

    __slots__ = ("_digests", "_f")

    def __init__(self, f: Callable[..., Any]) -> None:
        self._f = f
        self._digests: dict[Any, str] = {}

    def source(self) -> bytes:
        return inspect.getsource(self._f).encode("utf-8")

    def hexdigest(self, hash_method: Callable[..., Any]) -> str:
        digest = self._digests.get(hash_method)
        if digest is None:
            digest = self._digests[hash_method] = str(hash_method(self.source()).hexdigest())
        return digest


class CachedMixin(ExtensionBase):
    """The ``cached`` decorator and ``delete_cached``."""

    def cached(  # noqa: PLR0917 - Flask-Caching's positional signature
        self,
        timeout: Any = None,
        key_prefix: str | Callable[[], str] = "view/%s",
        unless: Callable[..., Any] | None = None,
        forced_update: Callable[..., Any] | None = None,
        is_stale: Callable[..., Any] | None = None,
        response_filter: Callable[..., Any] | None = None,
        query_string: bool = False,
        hash_method: Callable[..., Any] | None = None,
        cache_none: bool = False,
        make_cache_key: Callable[..., Any] | None = None,
        source_check: bool | None = None,
        response_hit_indication: bool | None = False,
        *,
        tags: Iterable[str] | None = None,
    ) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
        """Cache a view (or any function) under ``key_prefix``; Flask-Caching's options.

        ``tags`` (cachekit) attaches tags to every stored result, so that
        ``cache.invalidate_tags([...])`` removes them.
        """
        ext = self
        if timeout is not None:
            flask_timeout_to_ttl(timeout)  # a bad timeout fails at decoration
        tag_list = _check_tags(tags)
        unless_p = optional(Predicate, unless)
        forced_p = optional(Predicate, forced_update)
        stale_p = optional(StalePredicate, is_stale)
        custom_key = make_cache_key if callable(make_cache_key) else None
        prefix_is_str = isinstance(key_prefix, str)
        prefix_has_s = prefix_is_str and "%s" in key_prefix  # type: ignore[operator]

        def decorator(f: Callable[P, R]) -> CachedFunction[P, R]:
            func: Callable[..., Any] = f  # called with the wrapper's args
            sig = Signature(f)
            source = _SourceHash(f)
            is_async = inspect.iscoroutinefunction(f)

            def prefix_part(path: str | None, use_request: bool, kwargs: dict[str, Any]) -> str:
                if not prefix_is_str:
                    return str(key_prefix())  # type: ignore[operator] # an int too
                if not prefix_has_s:
                    return key_prefix  # type: ignore[return-value]
                if path is not None:
                    return key_prefix % path  # type: ignore[operator]
                if use_request:
                    return key_prefix % request.path  # type: ignore[operator]
                # Outside a request: the view's URL, relative as the request path is.
                url = url_for(f.__name__, _external=False, **kwargs)
                return key_prefix % url  # type: ignore[operator]

            def build_key(
                path: str | None,
                query_args: QueryArgs | None,
                use_request: bool,
                kw: dict[str, Any],
            ) -> str:
                hasher = ext.hash_method if hash_method is None else hash_method
                check = ext.source_check if source_check is None else source_check
                if query_string:
                    pairs: Iterable[tuple[str, str]]
                    if query_args is None:
                        pairs = request.args.items(multi=True)
                    else:
                        pairs = query_args_as_pairs(query_args)
                    digest = hasher(str(tuple(sorted(pairs))).encode())
                    if check:
                        digest.update(source.source())
                    # As Flask-Caching: with a query string the path is the request's when not
                    # given (never url_for, which a view routed under another endpoint lacks).
                    return prefix_part(path, True, kw) + str(digest.hexdigest())
                key = prefix_part(path, use_request, kw)
                if check:
                    key += source.hexdigest(hasher)
                return key

            def default_make_cache_key(*args: Any, **kwargs: Any) -> str:
                for name, arg in zip(sig.arg_names, args, strict=False):
                    kwargs[name] = arg
                use_request = kwargs.pop("use_request", False)
                if use_request:
                    path = query_args = None
                else:
                    path = kwargs.pop("path", None)
                    query_args = kwargs.pop("query_args", None)
                return build_key(path, query_args, use_request, kwargs)

            def key_for(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
                # A key that is not a non-empty str is stored as the proxies store it.
                if custom_key is not None:
                    return as_key(custom_key(*args, **kwargs))
                maker = cached_fn.make_cache_key
                if maker is not default_make_cache_key:  # replaced by the user
                    return as_key(maker(*args, use_request=True, **kwargs))
                if not query_string and prefix_has_s and source_check is not True:
                    if source_check is None and ext.source_check:
                        return build_key(None, None, True, kwargs)
                    return key_prefix % request.path  # type: ignore[operator]
                return build_key(None, None, True, kwargs) or EMPTY_KEY  # key_prefix=""

            def lookup(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, bool, Any]:
                cache_key = key_for(args, kwargs)
                if forced_p is not None and forced_p.forced(args, kwargs):
                    return cache_key, False, RECOMPUTE
                found, rv = ext._lookup(ext._decorator_core(), cache_key, cache_none)
                if found and stale_p is not None and stale_p(rv, args, kwargs):
                    return cache_key, False, RECOMPUTE
                return cache_key, found, rv

            def after_lookup(cache_key: str, found: bool, args: Any, kwargs: Any) -> None:
                if found and ext._debug():
                    logger.info("Cache used for key: %s", cache_key)
                if response_hit_indication:
                    _indicate_hit(found)
                if ext.enable_signals:
                    signal = cache_view_hit if found else cache_view_miss
                    emit(signal, cache=ext, cache_key=cache_key, args=args, kwargs=kwargs)

            def outcome(rv: Any) -> Any:
                """The value to store, or a signal that it must not be (or has its own TTL)."""
                if inspect.isgenerator(rv):
                    rv = join_generator(rv)
                if response_filter is not None and not response_filter(filter_value(rv)):
                    raise NotStored(rv)
                own = own_timeout(rv)
                if own:
                    raise StoreWith(rv, own)
                return rv

            def ttl() -> Any:
                return flask_timeout_to_ttl(cached_fn.cache_timeout)

            @functools.wraps(f)
            def decorated_function(*args: Any, **kwargs: Any) -> Any:
                if unless_p is not None and unless_p.bypass(func, args, kwargs):
                    return func(*args, **kwargs)
                try:
                    cache_key, found, rv = lookup(args, kwargs)
                except Exception:
                    if ext._debug():
                        raise
                    logger.exception("Exception possibly due to cache backend.")
                    return func(*args, **kwargs)
                if found and not response_hit_indication and not ext.enable_signals:
                    if isinstance(rv, HTTPException):
                        raise rv
                    return rv  # the hot path: a hit
                after_lookup(cache_key, found, args, kwargs)
                if found:
                    if isinstance(rv, HTTPException):
                        raise rv
                    return rv

                def compute() -> Any:
                    try:
                        value = func(*args, **kwargs)
                    except HTTPException as exc:
                        value = exc
                    return outcome(value)

                value = ext._fill(cache_key, compute, ttl(), tag_list, single_flight=rv is MISSING)
                if isinstance(value, HTTPException):
                    raise value
                return value

            @functools.wraps(f)
            async def decorated_async(*args: Any, **kwargs: Any) -> Any:
                if unless_p is not None and unless_p.bypass(func, args, kwargs):
                    return await func(*args, **kwargs)
                try:  # no init_app: the function runs uncached, as in decorated_function
                    core = ext._decorator_core()
                    cache_key = key_for(args, kwargs)
                    found, rv = False, RECOMPUTE
                    if forced_p is None or not forced_p.forced(args, kwargs):
                        found, rv = classify(await aget_decodable(core, cache_key), cache_none)
                    if found and stale_p is not None and stale_p(rv, args, kwargs):
                        found, rv = False, RECOMPUTE
                except Exception:
                    if ext._debug():
                        raise
                    logger.exception("Exception possibly due to cache backend.")
                    return await func(*args, **kwargs)
                after_lookup(cache_key, found, args, kwargs)
                if not found:

                    async def compute() -> Any:
                        try:
                            value = await func(*args, **kwargs)
                        except HTTPException as exc:
                            value = exc
                        return outcome(value)

                    rv = await ext._afill(
                        core, cache_key, compute, ttl(), tag_list, single_flight=rv is MISSING
                    )
                if isinstance(rv, HTTPException):
                    raise rv
                return rv

            cached_fn: Any = decorated_async if is_async else decorated_function
            cached_fn.uncached = f
            cached_fn.cache_timeout = timeout
            cached_fn.make_cache_key = default_make_cache_key
            return cast("CachedFunction[P, R]", cached_fn)

        return decorator

    def delete_cached(
        self,
        f: Any,
        path: str | None = None,
        query_args: QueryArgs | None = None,
        **kwargs: Any,
    ) -> bool:
        """Delete a ``cached`` function's value for ``path`` (and ``query_args``)."""
        return self.delete(f.make_cache_key(path=path, query_args=query_args, **kwargs))

    # -- filling a miss, shared with memoize ---------------------------------------------------

    def _fill(
        self,
        cache_key: str,
        compute: Callable[[], Any],
        ttl: Any,
        tags: list[str] | None,
        *,
        single_flight: bool,
        core: CoreCache | None = None,
    ) -> Any:
        """Compute a missing value once (single-flight) and store it; cache errors are logged.

        The call that runs the function returns its own value and leaves it stored, as in
        Flask-Caching (which always ``set``s); only the callers that waited for it (the
        single-flight's waiters) get the stored one. ``get_or_set`` stores with ``add`` and
        answers what is stored when the key is taken, which a nested call with the same key
        does first (a helper cached under ``view/%s`` that the view calls, functions sharing a
        ``key_prefix``, a memoized recursion whose ignored arguments make every level one key):
        then the value is ``set`` over it.
        """
        core = self._decorator_core() if core is None else core
        # Through the public methods, a miss is computed and set as in Flask-Caching: no flight.
        single_flight = single_flight and not isinstance(core, PublicCalls)
        done: list[Any] = []
        started: list[bool] = []

        def factory() -> Any:
            started.append(True)
            try:
                value = compute()
            except StoreWith as signal:  # stored within the flight: its waiters read it
                self._store_logged(core, cache_key, signal.value, signal.ttl, tags)
                raise
            done.append(value)
            return value

        try:
            if single_flight:
                target = self._distributed(core, "tags") if tags else core
                rv = _get_or_set_after_miss(target, cache_key, factory, ttl, tags)
                if done:  # this call ran the function: its own value, stored (see above)
                    if rv is not done[0]:
                        self._store(core, cache_key, done[0], ttl, tags)
                    return done[0]
                return rv  # a waiter's: the value the leader stored
            # Forced updates, stale values and a cached None (cache_none=False) recompute.
            value = factory()
            self._store(core, cache_key, value, ttl, tags)
            return value
        except (NotStored, StoreWith) as signal:
            return signal.value
        except ComputeOwn:  # a waiter whose leader's value was not for sharing
            stored = self._stored_after_flight(core, cache_key)
            if stored is not MISSING:
                return stored
            return self._fill(cache_key, compute, ttl, tags, single_flight=False, core=core)
        except CacheError as exc:
            if self._debug() or (started and not done):  # debug, or the function's own error
                raise
            if not done and not isinstance(exc, BackendUnavailable):  # a misuse: say so
                raise
            logger.exception("Exception possibly due to cache backend.")
            if done:
                return done[0]
            # The backend failed before the function ran (get_or_set's second read, its lock):
            # Flask-Caching computes the value then, uncached, and so does this.
            try:
                return compute()
            except (NotStored, StoreWith) as signal:
                return signal.value

    async def _afill(
        self,
        core: CoreCache,
        cache_key: str,
        compute: Callable[[], Any],
        ttl: Any,
        tags: list[str] | None,
        *,
        single_flight: bool,
    ) -> Any:
        done: list[Any] = []
        started: list[bool] = []

        async def factory() -> Any:
            started.append(True)
            try:
                value = await compute()
            except StoreWith as signal:  # see _fill
                self._store_logged(core, cache_key, signal.value, signal.ttl, tags)
                raise
            done.append(value)
            return value

        try:
            if single_flight:
                target = self._distributed(core, "tags") if tags else core
                rv = await _aget_or_set_after_miss(target, cache_key, factory, ttl, tags)
                if done:  # see _fill
                    if rv is not done[0]:
                        await self._astore(core, cache_key, done[0], ttl, tags)
                    return done[0]
                return rv
            value = await factory()
            await self._astore(core, cache_key, value, ttl, tags)
            return value
        except (NotStored, StoreWith) as signal:
            return signal.value
        except ComputeOwn:  # see _fill
            try:
                stored = await core._afill_peek(cache_key)
            except CacheError as exc:
                stored = self._unread_after_flight(exc)
            if stored is not MISSING:
                return stored
            return await self._afill(core, cache_key, compute, ttl, tags, single_flight=False)
        except CacheError as exc:
            if self._debug() or (started and not done):  # see _fill
                raise
            if not done and not isinstance(exc, BackendUnavailable):
                raise
            logger.exception("Exception possibly due to cache backend.")
            if done:
                return done[0]
            try:
                return await compute()
            except (NotStored, StoreWith) as signal:
                return signal.value

    def _stored_after_flight(self, core: CoreCache, cache_key: str) -> Any:
        """What a waiter sent to compute its own reads first: a CachedResponse's value, stored
        in the flight. Uncounted (this call's lookup was counted), an undecodable entry is a
        miss, and a backend outage is logged and computes, as every other cache error here."""
        try:
            return core._fill_peek(cache_key)
        except CacheError as exc:
            return self._unread_after_flight(exc)

    def _unread_after_flight(self, exc: CacheError) -> Any:
        if self._debug() or not isinstance(exc, BackendUnavailable):  # debug, or a misuse
            raise exc
        logger.exception("Exception possibly due to cache backend.")
        return MISSING

    async def _astore(
        self, core: CoreCache, key: str, value: Any, ttl: Any, tags: list[str] | None
    ) -> None:
        if tags:
            await self._distributed(core, "tags").aset(key, value, ttl, tags=tags)
        else:
            await core.aset(key, value, ttl)

    def _store(
        self, core: CoreCache, key: str, value: Any, ttl: Any, tags: list[str] | None
    ) -> None:
        if tags:
            self._distributed(core, "tags").set(key, value, ttl, tags=tags)
        else:
            core.set(key, value, ttl)

    def _store_logged(
        self, core: CoreCache, key: str, value: Any, ttl: Any, tags: list[str] | None
    ) -> None:
        try:
            self._store(core, key, value, flask_timeout_to_ttl(ttl), tags)
        except CacheError:
            if self._debug():
                raise
            logger.exception("Exception possibly due to cache backend.")


def _check_tags(tags: Iterable[str] | None) -> list[str] | None:
    """The core's rules and error (``InvalidArgumentType``, a ``TypeError`` too), in order."""
    if tags is None:
        return None
    if isinstance(tags, (str, bytes)):
        check_tags(tags)  # raises: a bare str would be split into letters
    try:
        tag_list = list(tags)  # once: tags may be a generator
    except TypeError:
        check_tags(tags)  # raises, saying what is wrong
        raise
    check_tags(tag_list)
    return tag_list or None


def _indicate_hit(found: bool) -> None:
    """Flask-Caching's ``response_hit_indication``: a ``hit_cache`` header on hits."""
    from flask import current_app

    g.flask_caching_hit_cache = found
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    funcs = app.after_request_funcs.setdefault(None, [])
    if not any(getattr(func, "__name__", None) == "apply_caching" for func in funcs):

        def apply_caching(response: Any) -> Any:
            if g.get("flask_caching_hit_cache"):
                response.headers["hit_cache"] = g.flask_caching_hit_cache
            return response

        funcs.append(apply_caching)


#: The core classes' own ``get_or_set``, which :func:`_get_or_set_after_miss` may shortcut.
_STOCK_GET_OR_SET = frozenset({CoreBase.get_or_set, CoreDistributedBase.get_or_set})
_STOCK_AGET_OR_SET = frozenset({CoreBase.aget_or_set, CoreDistributedBase.aget_or_set})


def _get_or_set_after_miss(
    core: CoreCache, key: str, factory: Callable[[], Any], ttl: Any, tags: list[str] | None
) -> Any:
    """``core.get_or_set(key, factory, ttl[, tags=tags])`` right after the decorator's own
    lookup missed (and counted the miss): the same single-flight fill, without the lookup that
    opens ``get_or_set``, so one decorated call counts one miss, not two.

    A value stored meanwhile is still found: the flight's leader reads the key first, with the
    provider's uncounted ``_peek``. A core whose class overrides ``get_or_set`` (tiered: L1,
    then L2's) is called as it is, and counts its own lookup too (docs/flask.md).
    """
    method = type(core).get_or_set
    if method not in _STOCK_GET_OR_SET:
        if tags:
            return cast("CoreDistributedBase", core).get_or_set(key, factory, ttl, tags=tags)
        return core.get_or_set(key, factory, ttl)
    if method is CoreDistributedBase.get_or_set:
        add = functools.partial(core.add, ttl=ttl, tags=check_tags(tags) or ())
    else:
        add = functools.partial(core.add, ttl=ttl)
    if ttl is not DEFAULT:
        to_seconds(ttl)
    return core._fill_miss(key, factory, add)


async def _aget_or_set_after_miss(
    core: CoreCache, key: str, factory: Callable[[], Any], ttl: Any, tags: list[str] | None
) -> Any:
    """The async twin of :func:`_get_or_set_after_miss`."""
    method = type(core).aget_or_set
    if method not in _STOCK_AGET_OR_SET:
        if tags:
            return await cast("CoreDistributedBase", core).aget_or_set(key, factory, ttl, tags=tags)
        return await core.aget_or_set(key, factory, ttl)
    if method is CoreDistributedBase.aget_or_set:
        add = functools.partial(core.aadd, ttl=ttl, tags=check_tags(tags) or ())
    else:
        add = functools.partial(core.aadd, ttl=ttl)
    if ttl is not DEFAULT:
        to_seconds(ttl)
    return await core._afill_miss(key, factory, add)
