"""A subclass that overrides the proxy methods sees the decorators' traffic (Flask-Caching 2.5:
"``@cached`` and ``@memoize`` go through the public ``Cache`` proxy methods"), so tracing and
metrics written as a subclass keep working. Found by running Flask-Caching's own tests."""

from __future__ import annotations

from typing import Any

import flask
import pytest
from flask_support import IMPLS, backend_config

import cachekit_flask


def recording(base: type) -> type:
    class Recording(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.calls: list[str] = []
            super().__init__(*args, **kwargs)

    for name in ("get", "has", "set", "delete", "delete_many", "get_many", "set_many"):

        def method(self: Any, *args: Any, _name: str = name, **kwargs: Any) -> Any:
            self.calls.append(_name)
            return getattr(super(Recording, self), _name)(*args, **kwargs)

        setattr(Recording, name, method)
    return Recording


@pytest.fixture
def cache(impl: str, backend: str, request: pytest.FixtureRequest) -> Any:
    redis_url = request.getfixturevalue("redis_server").url if backend == "redis" else None
    app = flask.Flask("subclassing")
    app.config.update(backend_config(backend, redis_url))
    made = recording(IMPLS[impl])(app)
    with app.test_request_context("/"):
        made.clear()
        yield made
        made.clear()


def test_cached_goes_through_get_and_set(cache: Any) -> None:
    app = cache.app

    @app.route("/page")
    @cache.cached()
    def page() -> str:
        return "hello"

    client = app.test_client()
    cache.calls.clear()
    client.get("/page")
    assert cache.calls == ["get", "set"]
    cache.calls.clear()
    assert client.get("/page").data == b"hello"
    assert cache.calls == ["get"]


def test_cached_with_cache_none_asks_has(cache: Any) -> None:
    app = cache.app

    @app.route("/none")
    @cache.cached(cache_none=True)
    def none() -> str:
        return "hello"

    cache.calls.clear()
    app.test_client().get("/none")
    assert cache.calls == ["get", "has", "set"]


def test_memoize_goes_through_public_methods(cache: Any) -> None:
    runs: list[tuple[int, int]] = []

    @cache.memoize()
    def add(a: int, b: int) -> int:
        runs.append((a, b))
        return a + b

    cache.calls.clear()
    assert add(5, 2) == 7
    miss = list(cache.calls)
    assert miss[0] == "get_many"  # the versions
    assert "set" in miss  # the result
    cache.calls.clear()
    assert add(5, 2) == 7
    assert cache.calls[0] == "get_many"
    assert set(cache.calls) <= {"get_many", "get"}
    assert runs == [(5, 2)]  # the subclass does not change what is cached


def test_delete_memoized_goes_through_public_methods(cache: Any) -> None:
    @cache.memoize()
    def add(a: int, b: int) -> int:
        return a + b

    add(5, 2)
    cache.calls.clear()
    cache.delete_memoized(add, 5, 2)
    assert "delete" in cache.calls
    cache.calls.clear()
    cache.delete_memoized(add)
    assert "set_many" in cache.calls
    cache.calls.clear()
    cache.delete_memoized_verhash(add)
    assert "delete_many" in cache.calls


def test_an_override_changes_what_the_decorators_read() -> None:
    """What the subclass returns is what the decorated view answers (it is not bypassed)."""

    class Upper(cachekit_flask.Cache):
        def get(self, key: str) -> Any:
            value = super().get(key)
            return value.upper() if isinstance(value, str) else value

    app = flask.Flask("upper")
    cache = Upper(app)

    @app.route("/u")
    @cache.cached()
    def page() -> str:
        return "quiet"

    client = app.test_client()
    assert client.get("/u").data == b"quiet"  # computed
    assert client.get("/u").data == b"QUIET"  # read through the override


def test_the_plain_extension_keeps_its_direct_paths() -> None:
    app = flask.Flask("plain")
    assert cachekit_flask.Cache(app)._public_calls is False
    assert recording(cachekit_flask.Cache)(app)._public_calls is True


def test_proxies_patched_onto_the_class_are_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Instrumentation that wraps ``Cache.get`` on the class itself (no subclass)."""
    seen: list[str] = []
    original = cachekit_flask.Cache.get

    def traced(self: Any, key: str) -> Any:
        seen.append(key)
        return original(self, key)

    monkeypatch.setattr(cachekit_flask.Cache, "get", traced)
    app = flask.Flask("patched")
    cache = cachekit_flask.Cache(app)

    @app.route("/p")
    @cache.cached()
    def page() -> str:
        return "p"

    app.test_client().get("/p")
    assert seen == ["view//p"]


def _overriding(base: type) -> type:
    class Wrapping(base):  # type: ignore[misc, valid-type]
        """Stores values wrapped and unwraps them on read: its get must see every hit."""

        def set(self, key: str, value: Any, timeout: Any = None, **kwargs: Any) -> Any:
            return super().set(key, ("wrapped", value), timeout, **kwargs)

        def get(self, key: str) -> Any:
            return _unwrapped(super().get(key))

        def get_many(self, *keys: str) -> list[Any]:
            return [_unwrapped(value) for value in super().get_many(*keys)]

    return Wrapping


def _unwrapped(value: Any) -> Any:
    return value[1] if isinstance(value, tuple) and value[:1] == ("wrapped",) else value


@pytest.mark.parametrize("backend", ["simple", "redis"])
def test_memoized_hits_go_through_an_overridden_get(
    impl: str, backend: str, request: pytest.FixtureRequest
) -> None:
    """Review findings: memoized hits were read with get_many past the subclass's get (the
    wrapped value came back), and a cached None never hit again (cache_none=True)."""
    redis_url = request.getfixturevalue("redis_server").url if backend == "redis" else None
    app = flask.Flask("wrapping")
    app.config.update(backend_config(backend, redis_url))
    cache = _overriding(IMPLS[impl])(app)
    runs: list[int] = []

    @cache.memoize()
    def double(n: int) -> int:
        runs.append(n)
        return 2 * n

    @cache.memoize(cache_none=True)
    def nothing(n: int) -> None:
        runs.append(-n)

    with app.app_context():
        cache.clear()
        assert [double(5) for _ in range(3)] == [10, 10, 10]
        assert [nothing(1) for _ in range(3)] == [None, None, None]
        assert runs == [5, -1]
        cache.clear()


def test_unreadable_version_keys_are_replaced_through_the_public_view(
    redis_server: Any,
) -> None:
    """Review finding: a version key holding data this cache cannot decode (Flask-Caching's)
    made every call through an overriding subclass miss and leave an orphan entry."""
    app = flask.Flask("unreadable")
    app.config.update(backend_config("redis", redis_server.url))
    cache = _overriding(cachekit_flask.Cache)(app)
    runs: list[int] = []

    @cache.memoize()
    def triple(n: int) -> int:
        runs.append(n)
        return 3 * n

    with app.app_context():
        cache.clear()
        core = cache.cache
        qualname = triple.__qualname__.replace("<locals>", "locals")
        version_key = f"{triple.__module__}.{qualname}_memver"
        core.redis_client().set(core.prefix + version_key, b"\x80\x04not cachekit's")
        assert [triple(2) for _ in range(3)] == [6, 6, 6]
        assert runs == [2]
        assert cache.get(version_key) is not None  # replaced by a version it can read
        cache.clear()
