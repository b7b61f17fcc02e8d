"""Django's ``cache`` and ``cached_db`` session engines on the cachekit backends."""

from __future__ import annotations

from importlib import import_module
from typing import Any

import pytest
from django.core.cache import caches

REDIS_PREFIX = "django-tests:"


@pytest.fixture(params=["memory", "redis"])
def session_cache(request: pytest.FixtureRequest, settings: Any) -> str:
    if request.param == "memory":
        entry = {"BACKEND": "cachekit_django.cache.MemoryCache", "LOCATION": "sessions"}
    else:
        entry = {
            "BACKEND": "cachekit_django.cache.RedisCache",
            "LOCATION": request.getfixturevalue("redis_location"),
            "OPTIONS": {"prefix": f"{REDIS_PREFIX}sessions:"},
        }
    settings.CACHES = {
        "default": {"BACKEND": "cachekit_django.cache.MemoryCache"},
        "sessions": entry,
    }
    settings.SESSION_CACHE_ALIAS = "sessions"
    return "sessions"


def _store(engine: str) -> Any:
    return import_module(f"django.contrib.sessions.backends.{engine}").SessionStore


def _round_trip(engine: str) -> Any:
    SessionStore = _store(engine)
    session = SessionStore()
    session["cart"] = {"items": [1, 2]}
    session.set_expiry(300)
    session.save()
    key = session.session_key
    loaded = SessionStore(session_key=key)
    assert loaded["cart"] == {"items": [1, 2]}
    assert SessionStore().exists(key)
    loaded["cart"]["items"].append(3)
    loaded.modified = True
    loaded.save()
    assert SessionStore(session_key=key)["cart"] == {"items": [1, 2, 3]}
    loaded.cycle_key()
    assert not SessionStore().exists(key)
    assert SessionStore(session_key=loaded.session_key)["cart"] == {"items": [1, 2, 3]}
    loaded.flush()
    assert SessionStore(session_key=loaded.session_key).load() == {}
    return SessionStore


def test_cache_sessions(session_cache: str) -> None:
    _round_trip("cache")


@pytest.mark.django_db
def test_cached_db_sessions(session_cache: str) -> None:
    from django.contrib.sessions.models import Session

    SessionStore = _store("cached_db")
    session = SessionStore()
    session["user"] = 42
    session.save()
    key = session.session_key
    assert Session.objects.filter(session_key=key).exists()
    assert caches[session_cache].get(session.cache_key) == {"user": 42}  # read from the cache
    caches[session_cache].clear()  # the database still has it
    assert SessionStore(session_key=key)["user"] == 42
    assert caches[session_cache].get(session.cache_key) == {"user": 42}  # cached again
    _round_trip("cached_db")
