"""Django's own caching machinery, unchanged, on the cachekit backends: ``cache_page``,
``CacheMiddleware`` and ``{% cache %}`` fragments, with caches looked up through
``django.core.cache.caches[...]``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import caches
from django.core.cache.utils import make_template_fragment_key
from django.http import HttpRequest, HttpResponse
from django.middleware.cache import CacheMiddleware
from django.template import Context, Template
from django.test import RequestFactory
from django.views.decorators.cache import cache_page

REDIS_PREFIX = "django-tests:"


@pytest.fixture(params=["memory", "redis"])
def alias(request: pytest.FixtureRequest, settings: Any) -> Any:
    """A CACHES alias of each kind, configured through settings as a project would."""
    caches_setting = {"default": {"BACKEND": "cachekit_django.cache.MemoryCache"}}
    if request.param == "memory":
        entry = {"BACKEND": "cachekit_django.cache.MemoryCache", "LOCATION": "views"}
    else:
        entry = {
            "BACKEND": "cachekit_django.cache.RedisCache",
            "LOCATION": request.getfixturevalue("redis_location"),
            "OPTIONS": {"prefix": f"{REDIS_PREFIX}views:"},
        }
    caches_setting["pages"] = entry
    settings.CACHES = caches_setting
    caches["pages"].clear()
    yield "pages"
    caches["pages"].clear()


def _counting_view() -> tuple[Callable[[HttpRequest], HttpResponse], list[int]]:
    calls: list[int] = []

    def view(request: HttpRequest) -> HttpResponse:
        calls.append(1)
        return HttpResponse(f"rendered {len(calls)}")

    return view, calls


def test_cache_page(alias: str) -> None:
    view, calls = _counting_view()
    cached = cache_page(60, cache=alias, key_prefix="site")(view)
    factory = RequestFactory()
    first = cached(factory.get("/products/?page=1"))
    second = cached(factory.get("/products/?page=1"))
    other = cached(factory.get("/products/?page=2"))
    assert first.content == second.content == b"rendered 1"
    assert other.content == b"rendered 2"
    assert calls == [1, 1]
    assert "max-age=60" in second["Cache-Control"]
    caches[alias].clear()
    assert cached(factory.get("/products/?page=1")).content == b"rendered 3"


def test_cache_middleware(alias: str) -> None:
    view, calls = _counting_view()
    middleware = CacheMiddleware(view, page_timeout=30, cache_alias=alias, key_prefix="mw")
    factory = RequestFactory()
    responses = [middleware(factory.get("/page/")) for _ in range(3)]
    assert [r.content for r in responses] == [b"rendered 1"] * 3
    assert calls == [1]
    post = middleware(factory.post("/page/"))  # only GET/HEAD are cached
    assert post.content == b"rendered 2"


def test_template_fragment_cache(alias: str) -> None:
    template = Template(
        '{% load cache %}{% cache 60 sidebar user using="pages" %}{{ counter }}{% endcache %}'
    )
    assert template.render(Context({"counter": 1, "user": "ada"})) == "1"
    assert template.render(Context({"counter": 2, "user": "ada"})) == "1"  # from the cache
    assert template.render(Context({"counter": 3, "user": "bob"})) == "3"  # another vary-on
    caches[alias].delete(make_template_fragment_key("sidebar", ["ada"]))
    assert template.render(Context({"counter": 4, "user": "ada"})) == "4"
