"""Review findings on ``cached``/``memoize`` and the proxies, checked side by side with
Flask-Caching where it runs the same code (``impl``: see conftest.py).

* A call that ran the function returns its own value and stores it (``set``), as Flask-Caching
  does: a nested call with the same key (a helper under ``view/%s``, a shared ``key_prefix``, a
  memoized recursion whose ignored arguments make every level one key) stored its value first,
  and the outer call returned that one instead of its own.
* A waiter's wait for another caller's computation of its key is bounded: a cached view that
  ran a same-key cached call in a worker thread waited for it, and the worker for the view.
* Keys that are not a non-empty ``str`` work in the proxies (``cache.set(user.id, ...)``).
* ``unlink`` answers the number of keys removed on Redis, as Flask-Caching's RedisCache does.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

import flask
import pytest
from flask_support import AppFactory

from cachekit import singleflight

# -- a call returns its own value ------------------------------------------------------------


def test_a_view_calling_a_helper_with_the_same_key_returns_the_page(
    make_app: AppFactory,
) -> None:
    app, cache = make_app()

    @cache.cached(timeout=60)  # key "view/<request.path>", the page's own key
    def sidebar() -> str:
        return "SIDEBAR"

    @app.route("/page")
    @cache.cached(timeout=60)
    def page() -> str:
        return "<html>PAGE " + sidebar() + "</html>"

    client = app.test_client()
    bodies = [client.get("/page").get_data(as_text=True) for _ in range(2)]
    assert bodies == ["<html>PAGE SIDEBAR</html>"] * 2
    with app.app_context():
        assert cache.get("view//page") == "<html>PAGE SIDEBAR</html>"


def test_functions_sharing_a_key_prefix_each_return_their_own_value(
    make_app: AppFactory,
) -> None:
    app, cache = make_app()
    n = itertools.count()

    @cache.cached(key_prefix="K")
    def inner() -> str:
        return f"in{next(n)}"

    @cache.cached(key_prefix="K")
    def outer() -> str:
        return f"out{next(n)}+" + inner()

    with app.test_request_context():
        # The outer call stores last: later calls of either read its value, as in Flask-Caching.
        assert [outer(), outer(), inner()] == ["out0+in1"] * 3


def test_a_memoized_recursion_on_one_key_returns_each_levels_value(
    make_app: AppFactory,
) -> None:
    app, cache = make_app()

    @cache.memoize(args_to_ignore=["depth"])
    def f(x: str, depth: int) -> int:
        return 0 if depth == 0 else f(x, depth - 1) + 1

    with app.app_context():
        assert [f("a", 3), f("a", 3), f("b", 0)] == [3, 3, 0]


@pytest.mark.parametrize("impl", ["cachekit_flask"])  # Flask-Caching runs no async functions
def test_async_nested_calls_with_one_key_return_their_own_values(make_app: AppFactory) -> None:
    app, cache = make_app()

    @cache.cached(timeout=60)
    async def sidebar() -> str:
        return "SIDEBAR"

    @app.route("/page")
    @cache.cached(timeout=60)
    async def page() -> str:
        return "<html>PAGE " + await sidebar() + "</html>"

    @cache.memoize(args_to_ignore=["depth"])
    async def f(x: str, depth: int) -> int:
        return 0 if depth == 0 else await f(x, depth - 1) + 1

    client = app.test_client()
    bodies = [client.get("/page").get_data(as_text=True) for _ in range(2)]
    assert bodies == ["<html>PAGE SIDEBAR</html>"] * 2

    async def calls() -> list[int]:
        return [await f("a", 3), await f("a", 3)]

    with app.app_context():
        assert asyncio.run(calls()) == [3, 3]


@pytest.mark.parametrize("impl", ["cachekit_flask"])  # tags are cachekit's
def test_nested_calls_with_tags_return_their_own_values(make_app: AppFactory) -> None:
    app, cache = make_app()

    @cache.cached(timeout=60, key_prefix="T", tags=["t"])
    def inner() -> str:
        return "inner"

    @cache.cached(timeout=60, key_prefix="T", tags=["t"])
    def outer() -> str:
        return "outer+" + inner()

    with app.test_request_context():
        assert [outer(), outer()] == ["outer+inner"] * 2
        assert cache.invalidate_tags(["t"]) == 1
        assert cache.get("T") is None


# -- a waiter's wait is bounded --------------------------------------------------------------


def test_a_view_running_a_same_key_call_in_a_worker_thread_does_not_hang(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, impl: str, backend: str
) -> None:
    # The bound (10 s by default) made short so that the test is: the single-flight's own, and
    # on Redis the provider's stampede_timeout, which bounds the in-process wait there.
    monkeypatch.setattr(singleflight, "WAIT_TIMEOUT", 0.3, raising=False)
    short = impl == "cachekit_flask" and backend == "redis"
    app, cache = make_app(**({"CACHEKIT_OPTIONS": {"stampede_timeout": 0.3}} if short else {}))

    @cache.cached(timeout=60)
    def sidebar() -> str:
        return "SIDEBAR"

    @app.route("/page")
    @cache.cached(timeout=60)
    def page() -> str:
        got: list[str] = []
        # A daemon thread joined with a timeout, not a pool: on a hang the view still returns.
        worker = threading.Thread(
            target=flask.copy_current_request_context(lambda: got.append(sidebar())),
            daemon=True,
        )
        worker.start()
        worker.join(8)
        return "PAGE " + (got[0] if got else "<worker hung>")

    client = app.test_client()
    assert client.get("/page").get_data(as_text=True) == "PAGE SIDEBAR"
    assert client.get("/page").get_data(as_text=True) == "PAGE SIDEBAR"


# -- keys that are not a non-empty str -------------------------------------------------------


@pytest.mark.parametrize("key", [1, 2.5, ("a", 1), None], ids=["int", "float", "tuple", "none"])
def test_non_str_keys_work_in_the_proxies(
    make_app: AppFactory, impl: str, backend: str, key: Any
) -> None:
    if impl == "flask_caching" and backend == "redis":
        pytest.skip("Flask-Caching's RedisCache raises TypeError (prefix + key) for them")
    app, cache = make_app()
    with app.app_context():
        assert cache.set(key, "v") is True
        assert cache.get(key) == "v"
        assert cache.has(key) is True
        assert cache.add(key, "w") is False
        assert cache.get_many(key, "zz") == ["v", None]
        assert cache.get_dict(key) == {key: "v"}
        assert cache.delete(key) is True
        assert cache.get(key) is None
        assert cache.has(key) is False
        assert cache.set_many({key: 2}) == [key]
        assert cache.get(key) == 2
        assert cache.delete_many(key) == [key]
        assert cache.get(key) is None


def test_the_empty_key_works_in_the_proxies(make_app: AppFactory) -> None:
    app, cache = make_app()
    with app.app_context():
        assert cache.set("", "v") is True
        assert cache.get("") == "v"
        assert cache.has("") is True
        assert cache.get_dict("", "zz") == {"": "v", "zz": None}
        assert cache.delete("") is True
        assert cache.get("") is None
        assert cache.set_many({"": 3}) == [""]
        assert cache.get_many("") == [3]
        assert cache.delete_many("") == [""]
        assert cache.has("") is False


def test_an_empty_or_int_key_prefix_caches(make_app: AppFactory, impl: str, backend: str) -> None:
    app, cache = make_app()
    n = itertools.count()

    @cache.cached(timeout=60, key_prefix="")
    def empty() -> str:
        return f"e{next(n)}"

    @cache.cached(timeout=60, key_prefix=lambda: 7)  # type: ignore[arg-type, return-value]
    def numbered() -> str:
        return f"n{next(n)}"

    with app.test_request_context():
        first = empty()
        assert empty() == first
        assert cache.get("") == first
        if impl == "flask_caching" and backend == "redis":
            return  # its RedisCache raises TypeError for the int key: the view runs uncached
        second = numbered()
        assert numbered() == second
        assert cache.get(7) == second


# -- unlink ------------------------------------------------------------------------------------


def test_unlink_answers_as_flask_caching_does(make_app: AppFactory, backend: str) -> None:
    app, cache = make_app()
    with app.app_context():
        cache.set("u", 1)
        cache.set("w", 2)
        if backend == "redis":  # RedisCache.unlink: the number of keys removed, None for none
            assert cache.unlink("u", "w", "zz") == 2
            assert cache.unlink("u") == 0
            assert cache.unlink() is None
        else:  # elsewhere Flask-Caching falls back to delete_many
            assert cache.unlink("u", "w", "zz") == ["u", "w", "zz"]
            assert cache.unlink("u") == ["u"]
            assert cache.unlink() == []
        assert cache.get("u") is None
        assert cache.get("w") is None
