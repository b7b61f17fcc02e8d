"""System checks: a bad ``CACHES`` entry fails ``manage.py check`` (and ``runserver``, ``migrate``)
at start-up with a hint, not the first request that touches the cache.

Each cachekit backend's entry is translated (:mod:`.locations`) and its provider built once and
closed (building never connects), so every option the provider validates is checked here too.

=======================  =====================================================================
``cachekit_django.E001``  ``LOCATION``/``OPTIONS`` the provider refuses (the message names the key)
``cachekit_django.E002``  ``TIMEOUT`` not seconds (a finite number, or a string ``int()``
                          reads, as Django takes it) or ``None`` (Django would silently use 300)
``cachekit_django.E003``  ``VERSION`` not an integer, or a string ``str(int)`` would write
``cachekit_django.E004``  ``KEY_FUNCTION`` neither a callable nor a dotted path to one
``cachekit_django.E005``  ``CACHEKIT_INVALIDATE_TAGS`` is malformed (see :mod:`.signals`)
``cachekit_django.E006``  a tag-invalidation rule's ``cache`` (settings or ``@invalidates_tags``)
                          is not an alias, not a cachekit backend, or one without tags
``cachekit_django.W001``  part of ``LOCATION``/``OPTIONS`` is accepted but unused or done
                          cachekit's own way (Redis read replicas, django-redis's
                          ``PARSER_CLASS``, pymemcache's ``retry_timeout``...)
``cachekit_django.W002``  a file cache's directory matches, is inside or contains ``MEDIA_ROOT``,
                          ``STATIC_ROOT`` or a ``STATICFILES_DIRS`` entry (Django's
                          ``caches.W002``, which looks at ``FileBasedCache`` only)
``cachekit_django.W003``  a file cache's ``LOCATION`` is a relative path (``caches.W003``)
``cachekit_django.W004``  memory caches with one ``LOCATION`` name but different ``OPTIONS``:
                          separate stores, where ``LocMemCache`` shares one by name
=======================  =====================================================================
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from cachekit.config import parse_url
from cachekit.errors import ConfigurationError

from .shared import build_unshared

if TYPE_CHECKING:
    from .cache import CacheKitCache

__all__ = [
    "check_caches",
    "check_invalidation_settings",
    "check_tag_caches",
    "register_checks",
]

_DOCS = "see docs/django.md"
#: Error keys that are not one of the OPTIONS (the E001 hint names them as they are).
_NOT_OPTIONS = frozenset({None, "url", "LOCATION", "OPTIONS", "MAX_ENTRIES", "CULL_FREQUENCY"})


def _backend_class(path: Any) -> type[CacheKitCache] | None:
    from .cache import CacheKitCache

    if isinstance(path, type):
        cls: Any = path
    else:
        try:
            cls = import_string(path)
        except ImportError:
            return None  # Django reports a missing backend itself
    return cls if isinstance(cls, type) and issubclass(cls, CacheKitCache) else None


def _note_hint(alias: str, note: str) -> str:
    where = f"CACHES[{alias!r}]"
    if note.startswith("LOCATION"):
        return f"{where}['LOCATION'] works as it is ({_DOCS})."
    return (
        f"It is accepted as it is; to silence this warning remove it from {where}['OPTIONS'] "
        f"(or change it as the message says), or add 'cachekit_django.W001' to "
        f"SILENCED_SYSTEM_CHECKS ({_DOCS})."
    )


def _hint(alias: str, key: str | None, exc: ConfigurationError | None = None) -> str:
    where = f"CACHES[{alias!r}]"
    if exc is not None and isinstance(exc.__cause__, ImportError):
        # A driver not installed (the registry's key is "provider", an option that does not
        # exist): the settings are right, the environment lacks the extra.
        other = (
            f"name a provider whose driver is installed in {where}['LOCATION']"
            if key in (None, "provider", "url", "LOCATION")
            else f"choose another value for {where}['OPTIONS'][{key!r}]"
        )
        named = re.search(r"cachekit\[([\w,]+)\]", str(exc))
        extra = named.group(1) if named else "EXTRA"
        return (
            f"Install the extra into the environment that runs Django: pip install "
            f"'cachekit[{extra}]' (from a clone: pip install -e '.[{extra}]'), or {other}."
        )
    if key in (None, "url", "LOCATION"):
        return f"Fix {where}['LOCATION'] ({_DOCS} for the forms each backend accepts)."
    if key == "OPTIONS":
        return f"Fix {where}['OPTIONS']: it must be a dict of option names ({_DOCS})."
    if key in ("MAX_ENTRIES", "CULL_FREQUENCY"):
        return f"Fix {where}['OPTIONS'][{key!r}] ({_DOCS}, 'Culling')."
    return (
        f"Fix {where}['OPTIONS'][{key!r}], or the same option in the LOCATION URL's query "
        "string (docs/django.md lists each provider's options)."
    )


def _int_like(value: Any) -> bool:
    """Whether Django's ``int(TIMEOUT)`` reads ``value`` (``"60"`` from an environment variable
    is fine; ``"5m"`` would silently become 300, and ``int()`` of NaN or infinity fails)."""
    if isinstance(value, float):
        return math.isfinite(value)
    try:
        int(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _int_text(value: Any) -> bool:
    """Whether ``value`` is an integer written as ``str(int)`` writes it (``"3"``, ``"-3"``).

    Django uses ``VERSION`` as given, in the made key: such a string makes the keys the int
    does, where ``" 3"`` or ``"03"`` would make others (and ``incr_version`` fails on any str).
    """
    if not isinstance(value, str):
        return False
    try:
        return str(int(value)) == value
    except ValueError:
        return False


def _check_entry(alias: str, entry: Mapping[str, Any]) -> list[CheckMessage]:
    cls = _backend_class(entry.get("BACKEND"))
    if cls is None:
        return []
    obj = f"CACHES[{alias!r}]"
    messages: list[CheckMessage] = []
    timeout = entry.get("TIMEOUT", 300)
    if timeout is not None and (isinstance(timeout, bool) or not _int_like(timeout)):
        messages.append(
            Error(
                f"TIMEOUT must be a number of seconds or None (never expire), got {timeout!r}",
                hint="Django would silently use 300 seconds instead; set a number or None.",
                obj=obj,
                id="cachekit_django.E002",
            )
        )
    version = entry.get("VERSION", 1)
    if isinstance(version, bool) or not (isinstance(version, int) or _int_text(version)):
        messages.append(
            Error(
                f"VERSION must be an integer, got {version!r}",
                hint="Cache versions are integers (incr_version adds to them).",
                obj=obj,
                id="cachekit_django.E003",
            )
        )
    key_function = entry.get("KEY_FUNCTION")
    if key_function is not None and not callable(key_function):
        resolved = None
        if not isinstance(key_function, str):  # Django's get_key_func: a callable or a path
            problem = f"it is a callable or a dotted path, got {type(key_function).__name__}"
        else:
            try:
                resolved = import_string(key_function)
            except ImportError as exc:
                problem = str(exc)
            else:
                problem = f"{key_function!r} is not callable"
        if not callable(resolved):
            messages.append(
                Error(
                    f"KEY_FUNCTION cannot be used: {problem}",
                    hint="Give a dotted path to a function (key, key_prefix, version) -> str.",
                    obj=obj,
                    id="cachekit_django.E004",
                )
            )
    params = {k: v for k, v in entry.items() if k not in ("BACKEND", "LOCATION")}
    plan = None
    try:
        plan = cls.plan(entry.get("LOCATION", ""), params)
        build_unshared(plan).close()
    except ConfigurationError as exc:
        key = exc.key
        if plan is not None and key is not None:
            key = plan.aliases.get(key, key)  # the key the user wrote (django-redis's name)
        options = entry.get("OPTIONS")
        given = isinstance(options, Mapping) and key in options
        if key not in _NOT_OPTIONS and not given:
            key = "LOCATION"  # not set in OPTIONS: LOCATION gave it (a FileCache's directory...)
        messages.append(
            Error(
                f"{cls.__name__}: {exc}",
                hint=_hint(alias, key, exc),
                obj=obj,
                id="cachekit_django.E001",
            )
        )
        return messages
    for note in plan.notes:
        messages.append(
            Warning(note, hint=_note_hint(alias, note), obj=obj, id="cachekit_django.W001")
        )
    if plan.scheme == "file":
        messages.extend(_file_location_checks(alias, entry.get("LOCATION"), plan))
    return messages


def _file_location_checks(alias: str, location: Any, plan: Any) -> list[CheckMessage]:
    """Django's own checks of ``FileBasedCache`` locations, for ``FileCache``: a cache
    directory served as media or static files publishes its pickles, and a relative one
    moves with the working directory."""
    messages: list[CheckMessage] = []
    directory = plan.options.get("directory") or parse_url(plan.url).options.get("directory")
    if (
        isinstance(location, str | os.PathLike)
        and "://" not in os.fspath(location)
        and not Path(location).is_absolute()
    ):
        messages.append(
            Warning(
                f"Your '{alias}' cache LOCATION path is relative. Use an absolute path instead.",
                id="cachekit_django.W003",
            )
        )
    if not directory:
        return messages
    cache_path = Path(directory).resolve()
    for name in ("MEDIA_ROOT", "STATIC_ROOT", "STATICFILES_DIRS"):
        setting = getattr(settings, name, None)
        if not setting:
            continue
        if name == "STATICFILES_DIRS":
            paths = {
                Path(entry[1] if isinstance(entry, tuple | list) else entry).resolve()
                for entry in setting
            }
        else:
            paths = {Path(setting).resolve()}
        if cache_path in paths:
            relation = "matches"
        elif any(path in cache_path.parents for path in paths):
            relation = "is inside"
        elif any(cache_path in path.parents for path in paths):
            relation = "contains"
        else:
            continue
        messages.append(
            Warning(
                f"Your '{alias}' cache configuration might expose your cache or lead to "
                f"corruption of your data because its LOCATION {relation} {name}.",
                id="cachekit_django.W002",
            )
        )
    return messages


def check_caches(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every cachekit backend in ``settings.CACHES``."""
    caches = getattr(settings, "CACHES", {})
    messages: list[CheckMessage] = []
    valid: dict[str, Mapping[str, Any]] = {}
    for alias, entry in caches.items():
        if isinstance(entry, Mapping):
            found = _check_entry(alias, entry)
            messages.extend(found)
            if not any(isinstance(message, Error) for message in found):
                valid[alias] = entry
    messages.extend(_split_memory_names(valid))
    return messages


def _split_memory_names(caches: Mapping[str, Mapping[str, Any]]) -> list[CheckMessage]:
    """Memory aliases with one ``LOCATION`` name share one store only when their ``OPTIONS``
    agree (a store has one bound and policy); ``LocMemCache`` shares by name alone."""
    by_name: dict[str, dict[Any, list[str]]] = {}
    for alias, entry in caches.items():
        cls = _backend_class(entry.get("BACKEND"))
        if cls is None:
            continue
        params = {k: v for k, v in entry.items() if k not in ("BACKEND", "LOCATION")}
        try:
            plan = cls.plan(entry.get("LOCATION", ""), params)
        except ConfigurationError:
            continue  # reported by _check_entry
        if plan.scheme != "memory" or plan.url != "memory://":
            continue
        shared = (plan.cull, sorted(plan.options.items(), key=lambda item: item[0]))
        by_name.setdefault(str(plan.options.get("name")), {}).setdefault(repr(shared), []).append(
            alias
        )
    messages: list[CheckMessage] = []
    for name, stores in by_name.items():
        if len(stores) < 2:
            continue
        aliases = sorted(alias for group in stores.values() for alias in group)
        messages.append(
            Warning(
                f"memory caches {', '.join(map(repr, aliases))} share the LOCATION name "
                f"{name!r} but not their OPTIONS, so they keep separate stores (LocMemCache "
                "would share one store between them)",
                hint="Give them the same OPTIONS to share one store, or distinct LOCATION names.",
                obj=f"CACHES[{aliases[0]!r}]",
                id="cachekit_django.W004",
            )
        )
    return messages


def check_invalidation_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``CACHEKIT_INVALIDATE_TAGS`` (model label -> tags), see :mod:`.signals`."""
    from .signals import SettingsError, parse_settings

    try:
        parse_settings(getattr(settings, "CACHEKIT_INVALIDATE_TAGS", {}))
    except SettingsError as exc:
        return [
            Error(
                str(exc),
                hint="Map 'app_label.Model' to a list of tag templates such as "
                "['catalog', 'product:{pk}'], or to {'tags': [...], 'cache': 'alias'}.",
                obj="CACHEKIT_INVALIDATE_TAGS",
                id="cachekit_django.E005",
            )
        ]
    return []


def _tag_cache_problem(alias: str) -> str | None:
    """Why ``caches[alias]`` cannot invalidate tags, or ``None`` (a misconfigured cachekit
    entry is E001's, not repeated here)."""
    from django.core.cache import caches

    entry = getattr(settings, "CACHES", {}).get(alias)
    if not isinstance(entry, Mapping):
        return "is not in settings.CACHES"
    if _backend_class(entry.get("BACKEND")) is None:
        return f"is not a cachekit backend ({entry.get('BACKEND')}), which tags need"
    cache: Any = caches[alias]
    if cache.configuration_error is not None:
        return None
    if not cache._distributed:
        return f"is a {cache.cachekit.provider_name}:// cache, which has no tags"
    return None


def check_tag_caches(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The cache alias of every tag-invalidation rule: otherwise each save of the model would
    fail after its commit (see :mod:`.signals`)."""
    from .signals import SettingsError, parse_settings, tag_rules

    where: dict[str, list[str]] = {}  # alias -> the models whose rules name it
    try:
        declared = parse_settings(getattr(settings, "CACHEKIT_INVALIDATE_TAGS", {}))
    except SettingsError:
        declared = {}  # E005
    for label, rule in declared.items():
        where.setdefault(rule.cache, []).append(label)
    for model, rule in tag_rules():
        models = where.setdefault(rule.cache, [])
        if model._meta.label not in models:
            models.append(model._meta.label)
    messages: list[CheckMessage] = []
    for alias, models in where.items():
        problem = _tag_cache_problem(alias)
        if problem is None:
            continue
        messages.append(
            Error(
                f"the tag cache {alias!r} of {', '.join(sorted(models))} {problem}",
                hint="Point the rule's 'cache' (CACHEKIT_INVALIDATE_TAGS or "
                "@invalidates_tags(cache=...)) at a cachekit alias with tags: memory, Redis, "
                "Redis Cluster, tiered or file, not memcached.",
                obj="CACHEKIT_INVALIDATE_TAGS",
                id="cachekit_django.E006",
            )
        )
    return messages


def register_checks() -> None:
    """Called from the app's ``ready()`` (registering twice is harmless: checks are a set)."""
    register(check_caches, Tags.caches)
    register(check_invalidation_settings, Tags.caches)
    register(check_tag_caches, Tags.caches)
