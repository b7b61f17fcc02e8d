"""The project's ``CACHES`` aliases as cachekit sees them, shared by the commands, /metrics and
the admin page.

An alias is a *cachekit backend* when its Django cache object exposes the core cache as
``.cachekit`` (every ``cachekit_django.cache`` backend does); detecting it that way rather than by
class keeps subclasses and third-party wrappers working. Other aliases (``LocMemCache``,
django-redis...) are listed too, with no statistics, so that a report over "every alias" says
plainly which ones it cannot describe instead of leaving them out. A cachekit alias whose entry
could not be built (bad ``OPTIONS``...) has no core but keeps its ``configuration_error``, so it is
reported as misconfigured rather than mistaken for a foreign backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import BaseCache, InvalidCacheBackendError, caches
from django.core.management.base import CommandError

import cachekit

__all__ = [
    "AliasInfo",
    "BREAKER_STATES",
    "aliases",
    "breaker_summary",
    "for_command",
    "format_bytes",
    "get_alias",
    "scan_all",
]

#: ``CacheStats.extra["breaker_state"]`` numbers (``cachekit.resilience.breaker.BreakerState``).
BREAKER_STATES = {0: "closed", 1: "half-open", 2: "open"}


@dataclass(frozen=True, slots=True)
class AliasInfo:
    """One ``CACHES`` alias: its Django cache object and, for cachekit backends, the core cache
    (``None`` with ``configuration_error`` set for a cachekit entry that could not be built)."""

    alias: str
    backend: str
    cache: BaseCache
    core: cachekit.Cache | None
    configuration_error: cachekit.ConfigurationError | None = None

    @property
    def is_cachekit(self) -> bool:
        return self.core is not None or self.configuration_error is not None

    @property
    def misconfigured(self) -> str | None:
        """The configuration error as shown to users, or ``None``."""
        error = self.configuration_error
        return None if error is None else f"misconfigured: {type(error).__name__}: {error}"

    def stats(self) -> cachekit.CacheStats | None:
        """A stats snapshot (``None`` for a non-cachekit alias); may raise ``CacheError`` (the
        configuration error itself for a misconfigured cachekit alias)."""
        error = self.configuration_error
        if error is not None:  # a copy: the one instance would gather every call's traceback
            copy = type(error)(str(error), key=error.key)
            copy.__cause__ = error.__cause__
            raise copy
        if self.core is None:
            return None
        get_stats = getattr(self.cache, "get_stats", None)
        stats = get_stats() if callable(get_stats) else self.core.get_stats()
        if not isinstance(stats, cachekit.CacheStats):
            raise TypeError(f"{self.backend}.get_stats() returned {type(stats).__name__}")
        return stats


def get_alias(alias: str) -> AliasInfo:
    """The alias named ``alias``; raises Django's ``InvalidCacheBackendError`` if unknown."""
    if alias not in settings.CACHES:
        known = ", ".join(sorted(settings.CACHES)) or "none"
        raise InvalidCacheBackendError(
            f"the cache alias {alias!r} is not in settings.CACHES (configured: {known})"
        )
    cache = caches[alias]
    core = getattr(cache, "cachekit", None)
    error = getattr(cache, "configuration_error", None)
    return AliasInfo(
        alias=alias,
        backend=str(settings.CACHES[alias].get("BACKEND", "")),
        cache=cache,
        core=core if isinstance(core, cachekit.Cache) else None,
        configuration_error=error if isinstance(error, cachekit.ConfigurationError) else None,
    )


def aliases(only: Iterable[str] | None = None) -> list[AliasInfo]:
    """Every configured alias in settings order, or just ``only`` (validated, in that order)."""
    names = list(settings.CACHES) if only is None else list(dict.fromkeys(only))
    return [get_alias(name) for name in names]


def _breaker_states(extra: Mapping[str, Any]) -> Iterator[int]:
    # Redis reports its breaker at the top level, tiered caches under "l2", memcached per node.
    state = extra.get("breaker_state")
    if isinstance(state, int):
        yield state
    for value in extra.values():
        if isinstance(value, Mapping):
            yield from _breaker_states(value)


def breaker_summary(extra: Mapping[str, Any]) -> str | None:
    """``"closed"``, ``"open"``, ``"open 1/3"``... or ``None`` when the provider has no breaker."""
    states = list(_breaker_states(extra))
    if not states:
        return None
    worst = max(states)
    name = BREAKER_STATES.get(worst, str(worst))
    if len(states) == 1 or worst == 0:
        return name
    return f"{name} {sum(1 for state in states if state == worst)}/{len(states)}"


def format_bytes(size: int | None) -> str:
    """``1536`` -> ``"1.5 KiB"``; ``None`` -> ``"-"``."""
    if size is None:
        return "-"
    if abs(size) < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def for_command(alias: str | None) -> list[AliasInfo]:
    """``--alias`` as a management command takes it: unknown names become ``CommandError``."""
    try:
        return aliases(None if alias is None else [alias])
    except InvalidCacheBackendError as exc:
        raise CommandError(str(exc)) from exc


def scan_all(core: cachekit.Cache, pattern: str, *, page: int = 500) -> list[str]:
    """Every key of ``core`` matching ``pattern``, de-duplicated (SCAN may repeat a key).

    Raises ``cachekit.UnsupportedOperation`` for providers that cannot list keys (memcached).
    """
    seen: dict[str, None] = {}
    cursor, keys = core.scan_keys(pattern, count=page)
    seen.update(dict.fromkeys(keys))
    while cursor:
        cursor, keys = core.scan_keys(pattern, cursor=cursor, count=page)
        seen.update(dict.fromkeys(keys))
    return list(seen)
