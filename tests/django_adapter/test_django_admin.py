"""The read-only "Cache statistics" admin page (cachekit_django.admin)."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import Client, override_settings

from cachekit.testing.servers import RedisServer, free_port

pytestmark = pytest.mark.django_db

PAGE = "/admin/cachekit/"


def test_anonymous_users_are_sent_to_login(client: Client) -> None:
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_non_staff_users_are_sent_to_login(client: Client, django_user_model: type) -> None:
    user = django_user_model.objects.create_user("visitor", password="pw-not-staff")
    client.force_login(user)
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_see_stats_and_a_hit_ratio_chart(admin_client: Client) -> None:
    cache = caches["default"]
    cache.clear()
    cache.set("a", 1)
    stats = cache.get_stats()
    for _ in range(3):
        cache.get("a")
    cache.get("missing")
    expected = (stats.hits + 3) / (stats.hits + stats.misses + 4)
    response = admin_client.get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    content = html[html.index('<div id="content-main" class="cachekit-stats">') :]
    assert "<svg" in content
    assert "<script" not in content  # the chart is plain SVG: no JavaScript library
    bar = re.search(r'<rect class="hit-ratio" x="\d+" y="4" width="([\d.]+)"', html)
    assert bar is not None
    assert float(bar.group(1)) == pytest.approx(320 * expected, abs=0.1)
    assert f"{round(expected * 100)} %" in html
    assert "not a cachekit backend (django.core.cache.backends.locmem.LocMemCache)" in html
    assert response.context["rows"][0].alias == "default"
    assert response.context["rows"][0].stats.items == 1


def test_admin_index_links_the_page(admin_client: Client) -> None:
    html = admin_client.get("/admin/").content.decode()
    assert f'href="{PAGE}"' in html
    assert "Cache statistics" in html


def test_an_unreachable_server_is_an_error_not_an_empty_cache(admin_client: Client) -> None:
    down = {
        "BACKEND": "cachekit_django.cache.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        "OPTIONS": {"socket_timeout": 0.5},
    }
    with override_settings(CACHES={**settings.CACHES, "down": down}):
        response = admin_client.get(PAGE)
    assert response.status_code == 200
    row = next(row for row in response.context["rows"] if row.alias == "down")
    assert row.stats is not None
    assert row.error is not None
    assert row.error.startswith("server unreachable: ")
    html = response.content.decode()
    cells = re.search(r'<th scope="row">down</th>(.*?)</tr>', html, re.S)
    assert cells is not None
    assert '<td colspan="3" class="errornote">server unreachable: ' in cells.group(1)


def test_aliases_sharing_a_core_are_marked_shared(
    admin_client: Client, redis_server: RedisServer
) -> None:
    location = redis_server.url.rsplit("/", 1)[0] + "/13"
    twins = {
        **settings.CACHES,
        "main": {"BACKEND": "cachekit_django.cache.RedisCache", "LOCATION": location,
                 "KEY_PREFIX": "a"},
        "sessions": {"BACKEND": "cachekit_django.cache.RedisCache", "LOCATION": location,
                     "KEY_PREFIX": "s"},
    }  # fmt: skip
    with override_settings(CACHES=twins):
        response = admin_client.get(PAGE)
    rows = {row.alias: row for row in response.context["rows"]}
    assert rows["sessions"].shared_with == ("main",)
    assert rows["default"].shared_with == ()
    assert "statistics shared with main" in response.content.decode()
