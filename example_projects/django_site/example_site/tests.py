"""The example site's own tests: ``python manage.py test example_site``.

They run on whatever caches the settings pick (the memory provider, or ``CACHEKIT_URL``).
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.cache import caches
from django.test import TestCase


def primes_line(html: str) -> str:
    match = re.search(r'<p id="primes">(.*?)</p>', html, re.S)
    assert match is not None, html
    return match.group(1)


def alias_hits(html: str, alias: str) -> int:
    match = re.search(rf'data-alias="{alias}">.*?<td class="hits">(\d+)</td>', html)
    assert match is not None, html
    return int(match.group(1))


class HomePageTests(TestCase):
    def setUp(self) -> None:
        for alias in settings.CACHES:
            caches[alias].clear()

    def test_second_request_is_a_cache_hit(self) -> None:
        first = self.client.get("/").content.decode()
        assert "cache miss" in primes_line(first)
        second = self.client.get("/").content.decode()
        assert "cache hit" in primes_line(second)
        assert alias_hits(second, "default") > alias_hits(first, "default")
        assert "visited this page 2 times" in second  # the session carried over

    def test_sessions_live_in_their_cache_alias(self) -> None:
        self.client.get("/")
        key = self.client.session.session_key
        assert caches["sessions"].get(f"django.contrib.sessions.cached_db{key}") is not None

    def test_fragment_is_cached(self) -> None:
        fragment = re.compile(r'<aside id="fragment">.*?</aside>', re.S)
        first = fragment.search(self.client.get("/").content.decode())
        second = fragment.search(self.client.get("/").content.decode())
        assert first is not None
        assert second is not None
        assert first.group(0) == second.group(0)


class ProductsPageTests(TestCase):
    def test_page_is_served_from_the_cache(self) -> None:
        caches["default"].clear()
        first = self.client.get("/products/").content
        assert self.client.get("/products/").content == first
        caches["default"].clear()
        assert self.client.get("/products/").content != first


class MetricsTests(TestCase):
    def test_metrics_list_both_aliases(self) -> None:
        text = self.client.get("/metrics").content.decode()
        assert 'cachekit_django_alias_info{alias="default"' in text
        assert 'cachekit_django_alias_info{alias="sessions"' in text
