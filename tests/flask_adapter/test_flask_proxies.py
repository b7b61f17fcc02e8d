"""The extension's proxy methods, apps and caches: Flask-Caching's answers from both libraries.

Parametrized over the extension (``impl``) and the backend: Flask-Caching's ``SimpleCache`` and
``RedisCache`` (on a real ``redis-server``), mapped by cachekit_flask onto its providers.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import flask
import pytest
from flask_support import IMPLS, AppFactory, backend_config

from cachekit.testing.servers import RedisServer


@pytest.fixture
def configured(make_app: AppFactory) -> tuple[flask.Flask, Any]:
    return make_app()


def test_get_set_add_delete_has(configured: tuple[flask.Flask, Any]) -> None:
    app, cache = configured
    with app.app_context():
        assert cache.get("missing") is None
        assert cache.set("a", {"n": 1}) is True
        assert cache.get("a") == {"n": 1}
        assert cache.has("a")
        assert not cache.has("missing")
        assert cache.add("a", 2) is False
        assert cache.add("b", 2) is True
        assert cache.get("b") == 2
        assert cache.delete("a") is True
        assert cache.delete("a") is False
        assert cache.get("a") is None
        cache.set("forever", 1, timeout=0)
        cache.set("delta", 1, timeout=timedelta(seconds=30))
        assert cache.get("forever") == 1
        assert cache.get("delta") == 1


def test_many_and_dict(configured: tuple[flask.Flask, Any]) -> None:
    app, cache = configured
    with app.app_context():
        assert sorted(cache.set_many({"k1": 1, "k2": None, "k3": "x"})) == ["k1", "k2", "k3"]
        assert cache.get_many("k1", "nope", "k3") == [1, None, "x"]
        assert cache.get_dict("k1", "nope") == {"k1": 1, "nope": None}
        assert cache.delete_many("k1", "k3") == ["k1", "k3"]
        assert cache.get_many("k1", "k3") == [None, None]


def test_clear_removes_only_this_cache(configured: tuple[flask.Flask, Any]) -> None:
    app, cache = configured
    with app.app_context():
        cache.set("x", 1)
        cache.set("y", 2)
        assert cache.clear() is True
        assert cache.get_many("x", "y") == [None, None]


def test_one_extension_serves_several_apps(impl: str) -> None:
    cache = IMPLS[impl]()
    apps = []
    for n in range(2):
        app = flask.Flask(f"multi{n}")
        app.config["CACHE_TYPE"] = "SimpleCache"
        cache.init_app(app)
        apps.append(app)
    with apps[0].app_context():
        cache.set("k", "first app")
    with apps[1].app_context():
        assert cache.get("k") is None
        cache.set("k", "second app")
    with apps[0].app_context():
        assert cache.get("k") == "first app"
    for app in apps:
        assert cache in app.extensions["cache"]


def test_several_caches_per_app(impl: str, redis_server: RedisServer) -> None:
    app = flask.Flask("two_caches")
    local = IMPLS[impl](app, config={"CACHE_TYPE": "SimpleCache"})
    shared = IMPLS[impl](app, config=backend_config("redis", redis_server.url))
    with app.app_context():
        local.set("k", "local")
        shared.set("k", "shared")
        assert local.get("k") == "local"
        assert shared.get("k") == "shared"
        shared.clear()
        assert local.get("k") == "local"
    assert {local, shared} <= set(app.extensions["cache"])


def test_config_argument_must_be_a_dict(impl: str) -> None:
    with pytest.raises(ValueError, match="dict"):
        IMPLS[impl](flask.Flask("bad"), config=[("CACHE_TYPE", "SimpleCache")])  # type: ignore[arg-type]
