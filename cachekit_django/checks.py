"""System checks: a bad ``CACHES`` entry fails ``manage.py check`` (and ``runserver``, ``migrate``)
at start-up with a hint, not the first request that touches the cache.

Each cachekit backend's entry is translated (:mod:`.locations`) and its provider built once and
closed (building never connects), so every option the provider validates is checked here too.

=======================  =====================================================================
``cachekit_django.E001``  ``LOCATION``/``OPTIONS`` the provider refuses (the message names the key)
``cachekit_django.E002``  ``TIMEOUT`` not a number of seconds or ``None`` (Django would silently
                          use 300)
``cachekit_django.E003``  ``VERSION`` not an integer
``cachekit_django.E004``  ``KEY_FUNCTION`` cannot be imported or is not callable
``cachekit_django.E005``  ``CACHEKIT_INVALIDATE_TAGS`` is malformed (see :mod:`.signals`)
``cachekit_django.W001``  part of ``LOCATION`` is accepted but unused (Redis read replicas)
=======================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from cachekit.errors import ConfigurationError

from .shared import build_unshared

if TYPE_CHECKING:
    from .cache import CacheKitCache

__all__ = ["check_caches", "check_invalidation_settings", "register_checks"]

_DOCS = "see docs/django.md"


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


def _hint(alias: str, key: str | None) -> str:
    where = f"CACHES[{alias!r}]"
    if key in (None, "url", "LOCATION"):
        return f"Fix {where}['LOCATION'] ({_DOCS} for the forms each backend accepts)."
    if key == "OPTIONS":
        return f"Fix {where}['OPTIONS']: it must be a dict ({_DOCS})."
    if key in ("MAX_ENTRIES", "CULL_FREQUENCY"):
        return f"Fix {where}['OPTIONS'][{key!r}] ({_DOCS}, 'Culling')."
    return (
        f"Fix {where}['OPTIONS'][{key!r}] or the same option in the LOCATION URL's query "
        f"string ({_DOCS} lists each provider's options)."
    )


def _check_entry(alias: str, entry: Mapping[str, Any]) -> list[CheckMessage]:
    cls = _backend_class(entry.get("BACKEND"))
    if cls is None:
        return []
    obj = f"CACHES[{alias!r}]"
    messages: list[CheckMessage] = []
    timeout = entry.get("TIMEOUT", 300)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
        messages.append(
            Error(
                f"TIMEOUT must be a number of seconds or None (never expire), got {timeout!r}",
                hint="Django would silently use 300 seconds instead; set a number or None.",
                obj=obj,
                id="cachekit_django.E002",
            )
        )
    version = entry.get("VERSION", 1)
    if isinstance(version, bool) or not isinstance(version, int):
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
        try:
            resolved = import_string(key_function)
        except ImportError as exc:
            resolved = None
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
    try:
        plan = cls.plan(entry.get("LOCATION", ""), params)
        build_unshared(plan).close()
    except ConfigurationError as exc:
        messages.append(
            Error(
                f"{cls.__name__}: {exc}",
                hint=_hint(alias, exc.key),
                obj=obj,
                id="cachekit_django.E001",
            )
        )
        return messages
    for note in plan.notes:
        hint = _hint(alias, "LOCATION")
        messages.append(Warning(note, hint=hint, obj=obj, id="cachekit_django.W001"))
    return messages


def check_caches(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every cachekit backend in ``settings.CACHES``."""
    caches = getattr(settings, "CACHES", {})
    messages: list[CheckMessage] = []
    for alias, entry in caches.items():
        if isinstance(entry, Mapping):
            messages.extend(_check_entry(alias, entry))
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


def register_checks() -> None:
    """Called from the app's ``ready()`` (registering twice is harmless: checks are a set)."""
    register(check_caches, Tags.caches)
    register(check_invalidation_settings, Tags.caches)
