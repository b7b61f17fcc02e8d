"""``/metrics`` (cachekit_django.urls): every alias's statistics in Prometheus format."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from cachekit.testing.servers import RedisServer


@pytest.fixture(autouse=True)
def _empty_caches() -> None:
    caches["default"].clear()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_report_the_default_alias() -> None:
    cache = caches["default"]
    before = cache.get_stats()
    cache.set("a", 1)
    cache.get("a")
    cache.get("b")
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "no-cache" in response["Cache-Control"]
    got = samples(response.content.decode())
    labels = (("cache", before.name), ("provider", "memory"))
    assert got[("cachekit_hits_total", labels)] == before.hits + 1
    assert got[("cachekit_misses_total", labels)] == before.misses + 1
    assert got[("cachekit_items", labels)] == 1
    info = {
        "alias": "locmem",
        "backend": "django.core.cache.backends.locmem.LocMemCache",
        "cache": "",
        "provider": "",
    }
    assert got[("cachekit_django_alias_info", tuple(sorted(info.items())))] == 1
    default_info = {
        "alias": "default",
        "backend": "cachekit_django.cache.MemoryCache",
        "cache": before.name,
        "provider": "memory",
    }
    assert got[("cachekit_django_alias_info", tuple(sorted(default_info.items())))] == 1


def test_metrics_include_redis_alias(redis_server: RedisServer) -> None:
    redis_alias = {"BACKEND": "cachekit_django.cache.RedisCache", "LOCATION": redis_server.url}
    with override_settings(CACHES={**settings.CACHES, "redis": redis_alias}):
        caches["redis"].set("x", 1)
        caches["redis"].get("x")
        text = Client().get("/metrics").content.decode()
        providers = {
            dict(labels)["provider"]
            for (name, labels) in samples(text)
            if name == "cachekit_hits_total"
        }
        assert providers == {"memory", "redis"}
        assert "cachekit_breaker_state" in text


def test_metrics_speak_openmetrics_when_asked() -> None:
    response = Client().get("/metrics", headers={"accept": "application/openmetrics-text"})
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().endswith("# EOF\n")


def test_metrics_only_answer_get_and_head() -> None:
    assert Client().post("/metrics").status_code == 405
    assert Client().head("/metrics").status_code == 200


@override_settings(CACHEKIT_METRICS_TOKEN="s3cret")
def test_metrics_token() -> None:
    client = Client()
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"authorization": "Basic s3cret"}).status_code == 401
    allowed = client.get("/metrics", headers={"authorization": "Bearer s3cret"})
    assert allowed.status_code == 200
    assert b"cachekit_hits_total" in allowed.content


def test_aliases_whose_cores_share_a_name_are_all_exported(redis_server: RedisServer) -> None:
    # Django never tells a backend its alias: both Redis cores are named "default".
    base = redis_server.url.rsplit("/", 1)[0]
    two = {
        "default": {"BACKEND": "cachekit_django.cache.RedisCache", "LOCATION": f"{base}/11"},
        "sessions": {"BACKEND": "cachekit_django.cache.RedisCache", "LOCATION": f"{base}/12"},
    }
    with override_settings(CACHES=two):
        assert caches["default"].cachekit.name == caches["sessions"].cachekit.name
        default_before = caches["default"].get_stats()
        sessions_before = caches["sessions"].get_stats()
        for i in range(5):
            caches["sessions"].set(f"s{i}", i)
            caches["sessions"].get(f"s{i}")
        caches["default"].get("absent")
        got = samples(Client().get("/metrics").content.decode())
        first = (("cache", "default"), ("provider", "redis"))
        second = (("cache", "sessions"), ("provider", "redis"))  # exported under its alias
        assert got[("cachekit_hits_total", first)] == default_before.hits
        assert got[("cachekit_misses_total", first)] == default_before.misses + 1
        assert got[("cachekit_hits_total", second)] == sessions_before.hits + 5
        assert got[("cachekit_misses_total", second)] == sessions_before.misses
        info = {
            dict(labels)["alias"]: dict(labels)["cache"]
            for (name, labels) in got
            if name == "cachekit_django_alias_info"
        }
        assert info == {"default": "default", "sessions": "sessions"}
        # The same labels on every scrape.
        again = samples(Client().get("/metrics").content.decode())
        assert ("cachekit_hits_total", second) in again
