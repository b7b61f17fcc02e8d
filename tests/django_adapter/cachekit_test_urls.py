"""URLs for the cachekit_django tests: the admin, cachekit's /metrics, a ``cache_page`` view."""

from __future__ import annotations

import itertools

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.cache import cache_page

#: How many times ``cached_page`` actually ran (a cache hit does not run it).
RENDERS = itertools.count(1)


@cache_page(300)
def cached_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"render {next(RENDERS)}", content_type="text/plain")


def missing_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("gone", status=410, content_type="text/plain")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("cached/", cached_page),
    path("gone/", missing_page),
    path("", include("cachekit_django.urls")),
]
