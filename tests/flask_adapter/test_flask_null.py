"""``CACHE_TYPE="NullCache"``: Flask-Caching's and cachekit_flask's, the same answers.

Run over both extensions: the proxies answer as Flask-Caching's NullCache does (``delete`` aside,
see below), the decorators recompute on every call, and both warn unless
``CACHE_NO_NULL_WARNING`` is set.
"""

from __future__ import annotations

import itertools
from typing import Any

import flask
import flask_caching
import pytest

import cachekit_flask
from cachekit.providers.null import NullCache

IMPLS = {"flask_caching": flask_caching.Cache, "cachekit_flask": cachekit_flask.Cache}


@pytest.fixture(params=sorted(IMPLS))
def impl(request: pytest.FixtureRequest) -> Any:
    return IMPLS[request.param]


def make(impl: Any, **config: Any) -> tuple[flask.Flask, Any]:
    app = flask.Flask("null")
    app.config.update({"CACHE_TYPE": "NullCache", "CACHE_NO_NULL_WARNING": True, **config})
    return app, impl(app)


def test_proxies_answer_as_null_cache(impl: Any) -> None:
    app, cache = make(impl)
    with app.app_context():
        assert cache.set("k", 1) is True
        assert cache.get("k") is None
        assert cache.has("k") is False
        assert cache.add("k", 1) is True
        assert cache.get_many("k", "j") == [None, None]
        assert cache.get_dict("k") == {"k": None}
        assert sorted(cache.set_many({"a": 1, "b": 2})) == ["a", "b"]
        assert cache.delete_many("a", "b") == ["a", "b"]
        assert cache.unlink("a") == ["a"]
        assert cache.clear() is True
        # delete: Flask-Caching's NullCache says True ("absent now"); cachekit_flask returns
        # the core's answer, False ("nothing removed"). Both leave the key absent.
        cache.delete("k")
        assert cache.get("k") is None


def test_decorators_recompute_every_call(impl: Any) -> None:
    app, cache = make(impl)
    counter = itertools.count()

    @app.route("/")
    @cache.cached(timeout=60)
    def view() -> str:
        return str(next(counter))

    @cache.memoize(60)
    def double(x: int) -> tuple[int, int]:
        return x * 2, next(counter)

    client = app.test_client()
    assert client.get("/").data != client.get("/").data
    with app.app_context():
        assert double(2) != double(2)
        cache.delete_memoized(double)


def test_warns_unless_told_not_to(impl: Any) -> None:
    app = flask.Flask("warn")
    app.config["CACHE_TYPE"] = "NullCache"
    with pytest.warns(UserWarning, match="caching is effectively disabled"):
        impl(app)


def test_cachekit_flask_builds_the_null_provider() -> None:
    _, cache = make(
        cachekit_flask.Cache,
        CACHE_DEFAULT_TIMEOUT=30,
        CACHE_IGNORE_ERRORS=True,  # no backend to fail: not passed on
        CACHE_SERIALIZER="json",  # nothing serialized: not passed on
        CACHE_OPTIONS={"mode": 0o600},  # Flask-Caching's NullCache ignores backend options
    )
    core = cache.cache
    assert isinstance(core, NullCache)
    assert core.default_ttl == 30
