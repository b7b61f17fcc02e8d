"""A read-only "Cache statistics" page in the Django admin, with no model behind it.

Django's admin lists models; cache aliases are not models, so the page is added to the site's
URLs (wrapped in ``admin_view``: staff only, never cached) and listed on the admin index as a
view-only entry of a "Cachekit" section. The default ``admin.site`` gets both when the admin
autodiscovers this module; a project with its own ``AdminSite`` calls :func:`install` on it, and
``CACHEKIT_ADMIN_PAGE = False`` leaves the default site untouched.

The hit-ratio chart is an inline SVG computed here: no JavaScript and no static files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin import AdminSite
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path, reverse

import cachekit

from .management.aliases import aliases, breaker_summary, format_bytes
from .shared import sharing

__all__ = ["AliasRow", "alias_rows", "install", "stats_view"]

_URL_NAME = "cachekit_stats"
_APP_LABEL = "cachekit_django"

# Chart geometry (px): label column, bar length at 100 %, row height.
_LABEL_WIDTH = 160
_BAR_WIDTH = 320
_ROW_HEIGHT = 26


@dataclass(frozen=True, slots=True)
class AliasRow:
    """One alias as the page shows it; ``stats`` is ``None`` for non-cachekit backends.

    ``error`` with ``stats``: the snapshot came back but its server figures could not be read
    (``CacheStats.server_read_error``); the row shows the counters and the error in their place.
    """

    alias: str
    backend: str
    stats: cachekit.CacheStats | None
    error: str | None
    breaker: str | None
    memory: str
    bar_y: int
    bar_width: float
    #: Other aliases on the same core cache (only ``KEY_PREFIX``/``VERSION`` differ): the
    #: counters are theirs together.
    shared_with: tuple[str, ...] = ()


def alias_rows() -> list[AliasRow]:
    """Every alias with its stats snapshot and its bar's geometry in the chart."""
    rows: list[AliasRow] = []
    infos = aliases()
    shared = sharing({info.alias: info.core for info in infos})
    for index, info in enumerate(infos):
        stats: cachekit.CacheStats | None = None
        error: str | None = None
        try:
            stats = info.stats()
        except cachekit.CacheError as exc:  # a misconfigured alias raises its configuration error
            error = info.misconfigured or f"{type(exc).__name__}: {exc}"
        else:
            # A server that did not answer: the client-side counters stand, but items, memory
            # and evictions are zeros (or partial sums), not an empty cache.
            server_error = stats.server_read_error if stats is not None else None
            if server_error is not None:
                error = f"server unreachable: {server_error}"
        rows.append(
            AliasRow(
                alias=info.alias,
                backend=info.backend,
                stats=stats,
                error=error,
                breaker=breaker_summary(stats.extra) if stats is not None else None,
                memory=format_bytes(stats.memory_bytes) if stats is not None else "-",
                bar_y=index * _ROW_HEIGHT,
                bar_width=round(_BAR_WIDTH * stats.hit_ratio, 1) if stats is not None else 0.0,
                shared_with=shared.get(info.alias, ()),
            )
        )
    return rows


def stats_view(request: HttpRequest, site: AdminSite) -> HttpResponse:
    """The page itself; reached through ``site.admin_view``, so staff only."""
    rows = alias_rows()
    context = {
        **site.each_context(request),
        "title": "Cache statistics",
        "rows": rows,
        "chart": {
            "width": _LABEL_WIDTH + _BAR_WIDTH + 70,
            "height": max(len(rows), 1) * _ROW_HEIGHT,
            "label_width": _LABEL_WIDTH,
            "bar_width": _BAR_WIDTH,
            "bar_height": _ROW_HEIGHT - 8,
            "text_x": _LABEL_WIDTH + _BAR_WIDTH + 6,
        },
    }
    return TemplateResponse(request, "cachekit_django/admin_stats.html", context)


def install(site: AdminSite) -> None:
    """Add the page to ``site``'s URLs and to its index (idempotent)."""
    if getattr(site, "_cachekit_installed", False):
        return
    original_urls: Callable[[], list[URLPattern | URLResolver]] = site.get_urls
    original_app_list: Callable[..., list[dict[str, Any]]] = site.get_app_list

    def get_urls() -> list[URLPattern | URLResolver]:
        def view(request: HttpRequest) -> HttpResponse:
            return stats_view(request, site)

        page = path("cachekit/", site.admin_view(view), name=_URL_NAME)
        return [page, *original_urls()]

    def get_app_list(request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        apps = original_app_list(request, app_label)
        if app_label not in (None, _APP_LABEL) or not request.user.is_staff:
            return apps
        url = reverse(f"{site.name}:{_URL_NAME}", current_app=site.name)
        entry = {
            "name": "Cachekit",
            "app_label": _APP_LABEL,
            "app_url": url,
            "has_module_perms": True,
            "models": [
                {
                    "name": "Cache statistics",
                    "object_name": "CacheStatistics",
                    "perms": {"add": False, "change": False, "delete": False, "view": True},
                    "admin_url": url,
                    "add_url": None,
                    "view_only": True,
                }
            ],
        }
        return sorted([*apps, entry], key=lambda app: str(app["name"]).lower())

    patched: Any = site  # instance attributes shadow the class's methods, for this site only
    patched.get_urls = get_urls
    patched.get_app_list = get_app_list
    patched._cachekit_installed = True


if getattr(settings, "CACHEKIT_ADMIN_PAGE", True):
    install(admin.site)
