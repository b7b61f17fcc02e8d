"""Helpers shared by the Flask adapter tests (a module of its own: ``conftest`` is ambiguous)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import flask
import flask_caching

import cachekit_flask

_prefixes = itertools.count()

IMPLS = {"flask_caching": flask_caching.Cache, "cachekit_flask": cachekit_flask.Cache}

AppFactory = Callable[..., tuple[flask.Flask, Any]]


def backend_config(backend: str, redis_url: str | None = None) -> dict[str, Any]:
    """Flask-Caching config keys for ``backend`` (``simple`` or ``redis``)."""
    if backend == "simple":
        return {"CACHE_TYPE": "SimpleCache"}
    assert redis_url is not None
    return {
        "CACHE_TYPE": "RedisCache",
        "CACHE_REDIS_URL": redis_url,
        "CACHE_KEY_PREFIX": f"t{next(_prefixes)}_",
    }
