"""Fixtures of the Flask adapter tests: apps built with either extension, on real backends.

``impl`` runs a test over both ``flask_caching.Cache`` and ``cachekit_flask.Cache``: the
behaviour tests are written once, and a drop-in must pass them the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import flask
import pytest
from flask_support import IMPLS, AppFactory, backend_config


@pytest.fixture(params=sorted(IMPLS))
def impl(request: pytest.FixtureRequest) -> str:
    """The extension under test: ``"flask_caching"`` or ``"cachekit_flask"``."""
    return str(request.param)


@pytest.fixture(params=["simple", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    """The backend of ``make_app``: ``SimpleCache``, or ``RedisCache`` on a real server."""
    return str(request.param)


@pytest.fixture
def make_app(impl: str, backend: str, request: pytest.FixtureRequest) -> Iterator[AppFactory]:
    """``make_app(**config) -> (app, cache)`` with the extension under test; cleared after."""
    made: list[Any] = []
    redis_url = request.getfixturevalue("redis_server").url if backend == "redis" else None

    def factory(**config: Any) -> tuple[flask.Flask, Any]:
        app = flask.Flask(f"app{len(made)}")
        app.config.update({**backend_config(backend, redis_url), **config})
        cache = IMPLS[impl](app)
        made.append((app, cache))
        return app, cache

    yield factory
    for app, cache in made:
        with app.app_context():
            cache.clear()
