"""``Cache.memoize``: results cached per arguments, with Flask-Caching's version-hash scheme.

A memoized function has a random version stored under ``<module.qualname>_memver`` (and, for a
method, one per instance under ``<module.qualname.repr(self)>_memver``); its keys are
``b64(hash(f"{name}{args}{kwargs}"))[:16]`` followed by those versions, so
``delete_memoized(f)`` only has to replace a version to orphan every result of ``f``. The keys
are byte-identical to Flask-Caching's; what differs is that the signature is read once at
decoration time, that a miss is computed once per key (the core's ``get_or_set``), and that a
hit reads the versions and the result together (one ``get_many``, one round trip on Redis or
memcached, where Flask-Caching makes two) once the versions are known (:class:`_Guesses`).
"""

from __future__ import annotations

import base64
import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from cachekit import MISSING
from cachekit.errors import SerializationError

from .base import aget_decodable, classify
from .cached import CachedMixin, _check_tags
from .calling import RECOMPUTE, NotStored, Predicate, StalePredicate, join_generator, optional
from .keys import Signature, function_namespace, get_id, new_version_hash
from .protocols import MemoizedFunction
from .settings import flask_timeout_to_ttl
from .signals import cache_memoize_hit, cache_memoize_miss, emit

if TYPE_CHECKING:
    from cachekit import Cache as CoreCache

    from .base import ExtensionBase

__all__ = ["MemoizeMixin"]

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("cachekit_flask")

#: TTL of a version written before any result (Flask-Caching's ``VERSION_TIMEOUT = 0``).
_VERSION_FOREVER = None


def _version_keys(fname: str, instance_fname: str | None) -> list[str]:
    keys = [fname + "_memver"]
    if instance_fname:
        keys.append(instance_fname + "_memver")
    return keys


class _Keyer:
    """Builds one memoized function's keys; everything but the versions is precomputed."""

    __slots__ = (
        "args_to_ignore", "f", "hash_method", "ignore_self", "make_name", "sig", "source",
        "source_check",
    )  # fmt: skip

    def __init__(
        self,
        f: Callable[..., Any],
        make_name: Callable[[str], str] | None,
        hash_method: Callable[..., Any] | None,
        source_check: bool | None,
        args_to_ignore: Iterable[str] | None,
    ) -> None:
        self.f = f
        self.sig = Signature(f)
        self.make_name = make_name if callable(make_name) else None
        self.hash_method = hash_method
        self.source_check = source_check
        self.args_to_ignore = frozenset(args_to_ignore or ())
        self.ignore_self = "self" in self.args_to_ignore
        self.source: bytes | None = None

    def names(self, args: tuple[Any, ...]) -> tuple[str, str | None]:
        sig = self.sig
        first = sig.first
        if first == "self" and args and not self.ignore_self:
            return sig.namespace, sig.instance_namespace(get_id(args[0]))
        if first == "cls" and not (args and inspect.isclass(args[0])):
            raise ValueError(
                "When using `delete_memoized` on a `@classmethod` you must provide the class "
                "as the first argument"
            )
        return sig.namespace, None

    def key(  # noqa: PLR0917 - internal, called from two places
        self,
        ext: ExtensionBase,
        sig: Signature,
        fname: str,
        version: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> str:
        altfname = self.make_name(fname) if self.make_name is not None else fname
        keyargs, keykwargs = sig.key_args(args, kwargs, self.args_to_ignore)
        hasher = ext.hash_method if self.hash_method is None else self.hash_method
        digest = hasher()
        digest.update(f"{altfname}{keyargs}{keykwargs}".encode())
        if ext.source_check if self.source_check is None else self.source_check:
            if self.source is None:
                self.source = inspect.getsource(self.f).encode("utf-8")
            digest.update(self.source)
        return base64.b64encode(digest.digest())[:16].decode("utf-8") + version


def _read_versions(core: CoreCache, keys: list[str]) -> dict[str, Any]:
    """The stored versions of ``keys``. An in-process core reads them with its uncounted
    ``_peek``: a memoized call then counts one lookup, its result's. A network core reads
    them in one ``get_many`` (one round trip, not one per key), counted (docs/flask.md)."""
    if core.provider_name not in _IN_PROCESS:
        return core.get_many(keys)
    found: dict[str, Any] = {}
    for key in keys:
        value = core._peek(key)
        if value is not MISSING:
            found[key] = value
    return found


async def _aread_versions(core: CoreCache, keys: list[str]) -> dict[str, Any]:
    if core.provider_name not in _IN_PROCESS:
        return await core.aget_many(keys)
    return _read_versions(core, keys)  # in process: no I/O to await


def _ensure_versions(core: CoreCache, keys: list[str]) -> str:
    """The joined versions of ``keys``, creating missing ones.

    A missing version is created with ``add``: of several callers racing to create it, one
    wins and the others read its version, so they all compute the same key (Flask-Caching's
    ``set_many`` lets each racer write its own version, and they recompute).
    """
    try:
        found = _read_versions(core, keys)
        overwrite = False
    except SerializationError:  # versions written by Flask-Caching: start new ones
        found, overwrite = {}, True
    values: list[str] = []
    for key in keys:
        value = found.get(key)
        if value is None:
            value = new_version_hash()
            if overwrite:
                core.set(key, value, _VERSION_FOREVER)
            elif not core.add(key, value, _VERSION_FOREVER):
                current = _read_versions(core, [key]).get(key)
                if current is None:  # present but unreadable (e.g. Flask-Caching's): replace it
                    core.set(key, value, _VERSION_FOREVER)
                else:
                    value = current
        values.append(value)
    return "".join(values)


async def _aensure_versions(core: CoreCache, keys: list[str]) -> str:
    try:
        found = await _aread_versions(core, keys)
        overwrite = False
    except SerializationError:
        found, overwrite = {}, True
    values: list[str] = []
    for key in keys:
        value = found.get(key)
        if value is None:
            value = new_version_hash()
            if overwrite:
                await core.aset(key, value, _VERSION_FOREVER)
            elif not await core.aadd(key, value, _VERSION_FOREVER):
                current = (await _aread_versions(core, [key])).get(key)
                if current is None:  # see _ensure_versions
                    await core.aset(key, value, _VERSION_FOREVER)
                else:
                    value = current
        values.append(value)
    return "".join(values)


#: Providers where a lookup is no round trip: two plain lookups cost less than the guess.
_IN_PROCESS = frozenset({"memory", "null"})
#: Cores whose memoized hits are not guessed: in-process ones (two lookups are cheaper), and
#: the public view of an overriding subclass, whose hits must go through its own ``get``.
_NO_GUESSES = _IN_PROCESS | {"public"}

#: Version guesses kept per memoized function (one per instance for methods): the memo is
#: dropped whole when full.
_GUESSES = 1024


class _Guesses(dict[tuple[int, tuple[str, str | None]], str]):
    """The versions last seen per (cache id, version-key names) of one memoized function.

    A hit then reads the versions and the result in one ``get_many``, one round trip on a
    network cache instead of two: the result's key is computed from the guessed versions and
    read beside them, and counts only if the versions read back are the guess. A wrong guess
    (``delete_memoized`` elsewhere, an evicted version) costs the usual second lookup. A dict
    (read with ``.get`` on the hot path); :meth:`remember` bounds it.
    """

    __slots__ = ()

    def remember(self, key: tuple[int, tuple[str, str | None]], version: str) -> None:
        if len(self) >= _GUESSES:
            self.clear()
        self[key] = version


def _confirmed(found: dict[str, Any], keys: list[str], guess: str) -> bool:
    """Whether the versions read under ``keys`` are the guessed (joined) ones."""
    if len(keys) == 1:  # a function's one version (a method has two)
        return found.get(keys[0]) == guess
    versions = [found.get(key) for key in keys]
    return all(type(v) is str for v in versions) and "".join(versions) == guess


class MemoizeMixin(CachedMixin):
    """The ``memoize`` decorator, ``delete_memoized`` and ``delete_memoized_verhash``."""

    def memoize(  # noqa: PLR0917 - Flask-Caching's positional signature
        self,
        timeout: Any = None,
        make_name: Callable[[str], str] | None = None,
        unless: Callable[..., Any] | None = None,
        forced_update: Callable[..., Any] | None = None,
        is_stale: Callable[..., Any] | None = None,
        response_filter: Callable[..., Any] | None = None,
        hash_method: Callable[..., Any] | None = None,
        cache_none: bool = False,
        source_check: bool | None = None,
        args_to_ignore: list[str] | None = None,
        *,
        tags: Iterable[str] | None = None,
    ) -> Callable[[Callable[P, R]], MemoizedFunction[P, R]]:
        """Cache results per arguments; Flask-Caching's options, plus cachekit's ``tags``."""
        ext = self
        if timeout is not None:
            flask_timeout_to_ttl(timeout)
        tag_list = _check_tags(tags)
        unless_p = optional(Predicate, unless)
        forced_p = optional(Predicate, forced_update)
        stale_p = optional(StalePredicate, is_stale)

        def decorator(f: Callable[P, R]) -> MemoizedFunction[P, R]:
            func: Callable[..., Any] = f  # called with the wrapper's args
            keyer = _Keyer(f, make_name, hash_method, source_check, args_to_ignore)
            is_async = inspect.iscoroutinefunction(f)

            guesses = _Guesses()

            def version_of(core: CoreCache, args: tuple[Any, ...]) -> str:
                return _ensure_versions(core, _version_keys(*keyer.names(args)))

            def lookup(
                core: CoreCache, args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> tuple[str, bool, Any]:
                """``(key, found, value)`` of a memoized call: see :class:`_Guesses`."""
                names = keyer.names(args)
                keys = _version_keys(*names)
                seen = (id(core), names)
                guess = guesses.get(seen)
                if guess is not None:
                    key = keyer.key(ext, keyer.sig, names[0], guess, args, kwargs)
                    try:
                        found = core.get_many([*keys, key])
                    except SerializationError:  # left to the lookups below, one by one
                        found = {}
                    if _confirmed(found, keys, guess):
                        return key, *classify(found.get(key, MISSING), cache_none)
                version = _ensure_versions(core, keys)
                if core.provider_name not in _NO_GUESSES:
                    guesses.remember(seen, version)
                key = keyer.key(ext, keyer.sig, names[0], version, args, kwargs)
                return key, *ext._lookup(core, key, cache_none)

            async def alookup(
                core: CoreCache, args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> tuple[str, bool, Any]:
                names = keyer.names(args)
                keys = _version_keys(*names)
                seen = (id(core), names)
                guess = guesses.get(seen)
                if guess is not None:
                    key = keyer.key(ext, keyer.sig, names[0], guess, args, kwargs)
                    try:
                        found = await core.aget_many([*keys, key])
                    except SerializationError:
                        found = {}
                    if _confirmed(found, keys, guess):
                        return key, *classify(found.get(key, MISSING), cache_none)
                version = await _aensure_versions(core, keys)
                if core.provider_name not in _NO_GUESSES:
                    guesses.remember(seen, version)
                key = keyer.key(ext, keyer.sig, names[0], version, args, kwargs)
                return key, *classify(await aget_decodable(core, key), cache_none)

            def key_of(core: CoreCache, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
                return keyer.key(
                    ext, keyer.sig, keyer.names(args)[0], version_of(core, args), args, kwargs
                )

            def refresh_versions(core: CoreCache, args: tuple[Any, ...], ttl: Any) -> None:
                """After a store, the versions live as long as the result (Flask-Caching).

                Their TTL is renewed with ``touch``, never by writing them back: a version read
                and rewritten would undo a ``delete_memoized`` that landed in between, and the
                results it orphaned would be served again. A missing one is created with
                ``add`` (a racing creator's wins).
                """
                for key in _version_keys(*keyer.names(args)):
                    if not core.touch(key, ttl):
                        core.add(key, new_version_hash(), ttl)

            async def arefresh_versions(core: CoreCache, args: tuple[Any, ...], ttl: Any) -> None:
                for key in _version_keys(*keyer.names(args)):
                    if not await core.atouch(key, ttl):
                        await core.aadd(key, new_version_hash(), ttl)

            def outcome(rv: Any) -> Any:
                if inspect.isgenerator(rv):
                    rv = join_generator(rv)
                if response_filter is not None and not response_filter(rv):
                    raise NotStored(rv)
                return rv

            def signal(found: bool, cache_key: str, args: Any, kwargs: Any) -> None:
                sig = cache_memoize_hit if found else cache_memoize_miss
                emit(sig, cache=ext, cache_key=cache_key, f=f, args=args, kwargs=kwargs)

            @functools.wraps(f)
            def decorated_function(*args: Any, **kwargs: Any) -> Any:
                if unless_p is not None and unless_p.bypass(func, args, kwargs):
                    return func(*args, **kwargs)
                core = ext._decorator_core()
                try:
                    forced = forced_p is not None and forced_p.forced(args, kwargs)
                    if forced:
                        cache_key = key_of(core, args, kwargs)
                        found, rv = False, RECOMPUTE
                    else:
                        cache_key, found, rv = lookup(core, args, kwargs)
                        if found and stale_p is not None and stale_p(rv, args, kwargs):
                            found, rv = False, RECOMPUTE
                except Exception:
                    if ext._debug():
                        raise
                    logger.exception("Exception possibly due to cache backend.")
                    return func(*args, **kwargs)
                if ext.enable_signals:
                    signal(found, cache_key, args, kwargs)
                if found:
                    return rv
                ran: list[bool] = []

                def compute() -> Any:
                    value = outcome(func(*args, **kwargs))
                    ran.append(True)  # computed here and stored (not filtered out)
                    return value

                ttl = flask_timeout_to_ttl(memoized_fn.cache_timeout)
                result = ext._fill(
                    cache_key, compute, ttl, tag_list, single_flight=rv is MISSING, core=core
                )
                if ran:
                    ext._guarded(refresh_versions, core, args, ttl)
                return result

            @functools.wraps(f)
            async def decorated_async(*args: Any, **kwargs: Any) -> Any:
                if unless_p is not None and unless_p.bypass(func, args, kwargs):
                    return await func(*args, **kwargs)
                core = ext._decorator_core()
                try:
                    forced = forced_p is not None and forced_p.forced(args, kwargs)
                    if forced:
                        fname, instance_fname = keyer.names(args)
                        version = await _aensure_versions(
                            core, _version_keys(fname, instance_fname)
                        )
                        cache_key = keyer.key(ext, keyer.sig, fname, version, args, kwargs)
                        found, rv = False, RECOMPUTE
                    else:
                        cache_key, found, rv = await alookup(core, args, kwargs)
                        if found and stale_p is not None and stale_p(rv, args, kwargs):
                            found, rv = False, RECOMPUTE
                except Exception:
                    if ext._debug():
                        raise
                    logger.exception("Exception possibly due to cache backend.")
                    return await func(*args, **kwargs)
                if ext.enable_signals:
                    signal(found, cache_key, args, kwargs)
                if found:
                    return rv
                ran: list[bool] = []

                async def compute() -> Any:
                    value = outcome(await func(*args, **kwargs))
                    ran.append(True)
                    return value

                ttl = flask_timeout_to_ttl(memoized_fn.cache_timeout)
                result = await ext._afill(
                    core, cache_key, compute, ttl, tag_list, single_flight=rv is MISSING
                )
                if ran:
                    try:
                        await arefresh_versions(core, args, ttl)
                    except Exception:
                        if ext._debug():
                            raise
                        logger.exception("Exception possibly due to cache backend.")
                return result

            def make_cache_key(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
                """The key of ``fn(*args, **kwargs)`` (``fn`` is the undecorated function)."""
                core = ext._decorator_core()
                if fn is f:
                    return key_of(core, args, kwargs)
                fname, instance_fname = function_namespace(fn, args)
                if keyer.ignore_self:
                    instance_fname = None
                version = _ensure_versions(core, _version_keys(fname, instance_fname))
                return keyer.key(ext, Signature(fn), fname, version, args, kwargs)

            memoized_fn: Any = decorated_async if is_async else decorated_function
            memoized_fn.uncached = f
            memoized_fn.cache_timeout = timeout
            memoized_fn.make_cache_key = make_cache_key
            memoized_fn.delete_memoized = lambda: ext.delete_memoized(memoized_fn)
            return cast("MemoizedFunction[P, R]", memoized_fn)

        return decorator

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            if self._debug():
                raise
            logger.exception("Exception possibly due to cache backend.")

    def delete_memoized(self, f: Any, *args: Any, **kwargs: Any) -> None:
        """Forget ``f``'s results: all of them (new version), or those of one call."""
        if not callable(f):
            raise TypeError(
                "Deleting messages by relative name is not supported, please use a function "
                "reference."
            )
        if not (args or kwargs):
            fname, instance_fname = function_namespace(f)
            key = _version_keys(fname, instance_fname)[-1]
            self.set_many({key: new_version_hash()}, 0)  # a public call, as in Flask-Caching
            return
        args = _ensure_self_arg(f, args)
        self.delete(f.make_cache_key(f.uncached, *args, **kwargs))

    def delete_memoized_verhash(self, f: Any, *args: Any) -> None:
        """Delete ``f``'s version key (the per-instance one for a bound method)."""
        if not callable(f):
            raise TypeError(
                "Deleting messages by relative name is not supported, please use a function "
                "reference."
            )
        fname, instance_fname = function_namespace(f)
        self.delete_many(_version_keys(fname, instance_fname)[-1])  # public, as Flask-Caching


def _ensure_self_arg(f: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """A bound method supplies its own instance (Flask-Caching 2.5's rule)."""
    instance = getattr(f, "__self__", None)
    if instance is None or inspect.isclass(instance):
        return args
    sig = Signature(f.uncached)
    if not sig.arg_names or sig.arg_names[0] != "self" or (args and args[0] is instance):
        return args
    return (instance, *args)
