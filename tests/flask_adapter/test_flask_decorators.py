"""``cached`` and ``memoize``: every option, run over Flask-Caching and cachekit_flask alike.

Each test is parametrized by ``impl`` (see conftest.py): a behaviour Flask-Caching has, the
drop-in must have the same way, down to the keys it writes.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections import OrderedDict
from typing import Any

import flask
import pytest
from flask_support import AppFactory
from werkzeug.exceptions import NotFound


class Counter:
    """Counts calls and returns a new value each time, so a hit is told from a recompute."""

    def __init__(self) -> None:
        self.calls = 0
        self._ids = itertools.count(1)

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls += 1
        return f"r{next(self._ids)}"


# -- cached ---------------------------------------------------------------------------------


def test_cached_view_hits_under_the_request_path_key(make_app: AppFactory) -> None:
    app, cache = make_app(SERVER_NAME="example.test")
    compute = Counter()

    @app.route("/items/<int:n>")
    @cache.cached(timeout=50)
    def items(n: int) -> str:
        return compute() + f"-{n}"

    client = app.test_client()
    first = client.get("/items/1").get_data(as_text=True)
    assert client.get("/items/1").get_data(as_text=True) == first
    assert client.get("/items/2").get_data(as_text=True) != first
    assert compute.calls == 2
    with app.test_request_context("/items/1"):
        assert items.make_cache_key(1, use_request=True) == "view//items/1"
        assert cache.get("view//items/1") == first
        assert items.uncached(3).endswith("-3")
        assert items.cache_timeout == 50
    with app.app_context():
        assert items.make_cache_key(path="/items/1") == "view//items/1"
        assert items.make_cache_key(n=2) == "view//items/2"  # url_for outside a request
        assert cache.delete_cached(items, path="/items/1")
    assert client.get("/items/1").get_data(as_text=True) != first


def test_cached_timeout_expires(make_app: AppFactory) -> None:
    app, cache = make_app()
    compute = Counter()

    @app.route("/t")
    @cache.cached(timeout=2)  # 2 s: cachelib's whole-second expiry can make 1 s read as 0
    def view() -> str:
        return compute()

    client = app.test_client()
    first = client.get("/t").data
    assert client.get("/t").data == first
    time.sleep(2.1)
    assert client.get("/t").data != first


def test_cached_key_prefix_str_and_callable(make_app: AppFactory) -> None:
    app, cache = make_app()
    compute = Counter()

    @cache.cached(key_prefix="fixed")
    def fixed() -> str:
        return compute()

    @cache.cached(key_prefix=lambda: "from-callable")
    def dynamic() -> str:
        return compute()

    with app.test_request_context("/"):
        value = fixed()
        assert fixed() == value
        assert cache.get("fixed") == value
        other = dynamic()
        assert dynamic() == other
        assert cache.get("from-callable") == other
    assert compute.calls == 2


def test_cached_unless_with_and_without_arguments(make_app: AppFactory) -> None:
    app, cache = make_app()
    compute = Counter()
    skip = {"on": True}
    seen: list[tuple[Any, ...]] = []

    @cache.cached(key_prefix="u1", unless=lambda: skip["on"])
    def plain() -> str:
        return compute()

    def unless_with_args(f: Any, *args: Any, **kwargs: Any) -> bool:
        seen.append((f.__name__, args, kwargs))
        return True

    @cache.cached(key_prefix="u2", unless=unless_with_args)
    def with_args(x: int) -> str:
        return compute()

    with app.test_request_context("/"):
        assert plain() != plain()  # bypassed
        skip["on"] = False
        assert plain() == plain()
        assert with_args(7) != with_args(7)
    assert seen == [("with_args", (7,), {})] * 2


def test_cached_forced_update_recomputes_and_stores(make_app: AppFactory) -> None:
    app, cache = make_app()
    force = {"on": False}

    @cache.cached(key_prefix="f", forced_update=lambda: force["on"])
    def view() -> str:
        return Counter()() + str(time.monotonic_ns())

    with app.test_request_context("/"):
        first = view()
        assert view() == first
        force["on"] = True
        second = view()
        assert second != first
        force["on"] = False
        assert view() == second


def test_cached_query_string_ignores_argument_order(make_app: AppFactory) -> None:
    app, cache = make_app()
    compute = Counter()

    @app.route("/search")
    @cache.cached(query_string=True)
    def search() -> str:
        return compute()

    client = app.test_client()
    first = client.get("/search?a=1&b=2").data
    assert client.get("/search?b=2&a=1").data == first
    assert client.get("/search?a=1&b=3").data != first
    assert compute.calls == 2
    digest = hashlib.sha256(str((("a", "1"), ("b", "2"))).encode()).hexdigest()
    with app.app_context():
        assert search.make_cache_key(path="/search", query_args="b=2&a=1") == (
            "view//search" + digest
        )
        assert cache.get("view//search" + digest) == first.decode()


def test_cached_query_string_key_uses_the_request_path(make_app: AppFactory) -> None:
    """Found by Flask-Caching's own tests: without ``path`` the key is ``request.path``'s, even
    for a view routed under another endpoint name (``url_for`` would fail there)."""
    app, cache = make_app()

    @cache.cached(query_string=True)
    def view() -> str:
        return "v"

    app.add_url_rule("/works", "works", view)
    digest = hashlib.sha256(str((("a", "1"),)).encode()).hexdigest()
    with app.test_request_context("/works?a=1"):
        assert view.make_cache_key() == "view//works" + digest
        assert view() == "v"
        assert cache.delete_cached(view) is True


def test_cached_hash_method(make_app: AppFactory) -> None:
    app, cache = make_app()

    @app.route("/h")
    @cache.cached(query_string=True, hash_method=hashlib.md5)
    def view() -> str:
        return "hashed"

    assert app.test_client().get("/h?x=1").data == b"hashed"
    digest = hashlib.md5(str((("x", "1"),)).encode()).hexdigest()
    with app.app_context():
        assert cache.get("view//h" + digest) == "hashed"


def test_cached_none_only_with_cache_none(make_app: AppFactory) -> None:
    app, cache = make_app()
    compute = Counter()

    @cache.cached(key_prefix="n1")
    def default() -> None:
        compute()

    @cache.cached(key_prefix="n2", cache_none=True)
    def cached_none() -> None:
        compute()

    with app.test_request_context("/"):
        default()
        default()
        assert compute.calls == 2  # a cached None is not a hit by default
        cached_none()
        cached_none()
        assert compute.calls == 3


def test_cached_response_filter(make_app: AppFactory) -> None:
    app, cache = make_app()
    compute = Counter()

    @app.route("/rf/<int:status>")
    @cache.cached(response_filter=lambda rv: rv[1] == 200)
    def view(status: int) -> tuple[str, int]:
        return compute(), status

    client = app.test_client()
    assert client.get("/rf/500").data != client.get("/rf/500").data
    assert client.get("/rf/200").data == client.get("/rf/200").data
    assert compute.calls == 3


def test_cached_make_cache_key(make_app: AppFactory) -> None:
    app, cache = make_app()

    @app.route("/mk/<name>")
    @cache.cached(make_cache_key=lambda name: f"custom:{name.lower()}")
    def view(name: str) -> str:
        return f"hello {name}"

    client = app.test_client()
    assert client.get("/mk/Ada").data == b"hello Ada"
    assert client.get("/mk/ADA").data == b"hello Ada"  # same key
    with app.app_context():
        assert cache.get("custom:ada") == "hello Ada"


def test_cached_source_check_adds_the_source_hash(make_app: AppFactory) -> None:
    app, cache = make_app()

    @cache.cached(key_prefix="src", source_check=True)
    def view() -> str:
        return "with source"

    import inspect

    digest = hashlib.sha256(inspect.getsource(view.uncached).encode()).hexdigest()
    with app.test_request_context("/"):
        assert view() == "with source"
        assert cache.get("src" + digest) == "with source"
        assert cache.get("src") is None


def test_cached_is_stale(make_app: AppFactory) -> None:
    app, cache = make_app()
    compute = Counter()
    stale_values: list[Any] = []

    def is_stale(value: Any) -> bool:
        stale_values.append(value)
        return len(stale_values) == 1

    @cache.cached(key_prefix="stale", is_stale=is_stale)
    def view() -> str:
        return compute()

    with app.test_request_context("/"):
        first = view()
        second = view()  # judged stale: recomputed
        assert second != first
        assert view() == second
    assert stale_values == [first, second]


def test_cached_http_exception_is_cached_and_reraised(make_app: AppFactory) -> None:
    app, cache = make_app()
    compute = Counter()

    @app.route("/gone")
    @cache.cached()
    def view() -> str:
        compute()
        flask.abort(404)

    client = app.test_client()
    assert client.get("/gone").status_code == 404
    assert client.get("/gone").status_code == 404
    assert compute.calls == 1
    with app.app_context():
        assert isinstance(cache.get("view//gone"), NotFound)


def test_cached_response_timeout_override(make_app: AppFactory, impl: str) -> None:
    import importlib

    module = importlib.import_module(impl)
    app, cache = make_app()

    @cache.cached(key_prefix="cr", timeout=1000)
    def view() -> Any:
        return module.CachedResponse(flask.make_response("short"), timeout=2)

    with app.test_request_context("/"):
        assert view().get_data() == b"short"
        assert cache.get("cr") is not None
    time.sleep(2.1)
    with app.test_request_context("/"):
        assert cache.get("cr") is None


def test_cached_response_hit_indication(make_app: AppFactory) -> None:
    app, cache = make_app()

    @app.route("/hit")
    @cache.cached(response_hit_indication=True)
    def view() -> str:
        return "x"

    client = app.test_client()
    assert "hit_cache" not in client.get("/hit").headers
    assert client.get("/hit").headers["hit_cache"] == "True"


def test_cached_generator_is_joined(make_app: AppFactory) -> None:
    app, cache = make_app()

    @cache.cached(key_prefix="gen")
    def view() -> Any:
        yield "a"
        yield "b"

    with app.test_request_context("/"):
        assert view() == "ab"
        assert cache.get("gen") == "ab"


# -- memoize ----------------------------------------------------------------------------------


def test_memoize_by_arguments_positional_or_keyword(make_app: AppFactory) -> None:
    app, cache = make_app()
    compute = Counter()

    @cache.memoize(50)
    def add(a: int, b: int = 2, *rest: int, **extra: int) -> str:
        return compute()

    with app.app_context():
        first = add(1)
        assert add(1, 2) == first
        assert add(a=1, b=2) == first
        assert add(1, b=2) == first
        assert add(2) != first
        assert add(1, 2, 3) != first
        assert add(1, z=3) != add(1, z=4)
        assert add.uncached(1) != first
        assert add.cache_timeout == 50


def test_memoize_timeout_expires(make_app: AppFactory) -> None:
    app, cache = make_app()

    @cache.memoize(timeout=2)  # see test_cached_timeout_expires
    def f(x: int) -> float:
        return time.monotonic()

    with app.app_context():
        first = f(1)
        assert f(1) == first
        time.sleep(2.1)
        assert f(1) != first


def test_memoize_make_name(make_app: AppFactory) -> None:
    app, cache = make_app()
    names: list[str] = []

    def make_name(fname: str) -> str:
        names.append(fname)
        return "renamed"

    @cache.memoize(make_name=make_name)
    def f(x: int) -> int:
        return x * 2

    with app.app_context():
        assert f(2) == 4
        key = f.make_cache_key(f.uncached, 2)
        assert cache.get(key) == 4
    assert names[0] == "test_flask_decorators.test_memoize_make_name.locals.f"


def test_memoize_unless_forced_update_response_filter(make_app: AppFactory) -> None:
    app, cache = make_app()
    compute = Counter()
    force = {"on": False}

    @cache.memoize(unless=lambda: True)
    def never(x: int) -> str:
        return compute()

    @cache.memoize(forced_update=lambda: force["on"])
    def forced(x: int) -> str:
        return compute()

    @cache.memoize(response_filter=lambda rv: rv != "skip")
    def filtered(x: str) -> str:
        compute()
        return x

    with app.app_context():
        assert never(1) != never(1)
        first = forced(1)
        assert forced(1) == first
        force["on"] = True
        assert forced(1) != first
        calls = compute.calls
        filtered("skip")
        filtered("skip")
        filtered("keep")
        filtered("keep")
        assert compute.calls == calls + 3


def test_memoize_hash_method_and_source_check(make_app: AppFactory) -> None:
    app, cache = make_app()

    @cache.memoize(hash_method=hashlib.md5)
    def md5ed(x: int) -> int:
        return x

    @cache.memoize(source_check=True)
    def sourced(x: int) -> int:
        return x

    with app.app_context():
        assert md5ed(1) == 1
        assert sourced(1) == 1
        md5_key = md5ed.make_cache_key(md5ed.uncached, 1)
        sha_key = sourced.make_cache_key(sourced.uncached, 1)
        assert cache.get(md5_key) == 1
        assert cache.get(sha_key) == 1
        assert md5_key[:16] != sha_key[:16]


def test_memoize_cache_none(make_app: AppFactory) -> None:
    app, cache = make_app()
    compute = Counter()

    @cache.memoize()
    def default(x: int) -> None:
        compute()

    @cache.memoize(cache_none=True)
    def keeps_none(x: int) -> None:
        compute()

    with app.app_context():
        default(1)
        default(1)
        assert compute.calls == 2
        keeps_none(1)
        keeps_none(1)
        assert compute.calls == 3


def test_memoize_args_to_ignore(make_app: AppFactory) -> None:
    app, cache = make_app()
    compute = Counter()

    @cache.memoize(args_to_ignore=["request_id"])
    def lookup(user: int, request_id: str) -> str:
        return compute()

    with app.app_context():
        assert lookup(1, "a") == lookup(1, "b") == lookup(1, request_id="c")
        assert lookup(2, "a") != lookup(1, "a")
    assert compute.calls == 2


def test_memoize_is_stale(make_app: AppFactory) -> None:
    app, cache = make_app()
    compute = Counter()

    @cache.memoize(is_stale=lambda value, x: value == "r1" and x == 1)
    def f(x: int) -> str:
        return compute()

    with app.app_context():
        assert f(1) == "r1"
        assert f(1) == "r2"  # r1 was stale for x == 1
        assert f(1) == "r2"


def test_delete_memoized_all_and_one_call(make_app: AppFactory) -> None:
    app, cache = make_app()
    compute = Counter()

    @cache.memoize()
    def f(a: int, b: int = 0) -> str:
        return compute()

    with app.app_context():
        one, two = f(1), f(2)
        cache.delete_memoized(f, 1)
        assert f(1) != one
        assert f(2) == two
        one = f(1)
        cache.delete_memoized(f)
        assert f(1) != one
        assert f(2) != two
        three = f(3)
        f.delete_memoized()
        assert f(3) != three
        with pytest.raises(TypeError):
            cache.delete_memoized("f")


def test_delete_memoized_methods_and_classmethods(make_app: AppFactory) -> None:
    app, cache = make_app()
    compute = Counter()

    class Adder:
        def __init__(self, name: str) -> None:
            self.name = name

        def __repr__(self) -> str:
            return f"Adder({self.name})"

        @cache.memoize()
        def add(self, b: int) -> str:
            return compute()

        @classmethod
        @cache.memoize()
        def build(cls, b: int) -> str:
            return compute()

    a1, a2 = Adder("1"), Adder("2")
    with app.app_context():
        x1, x2 = a1.add(3), a2.add(3)
        assert a1.add(3) == x1
        assert x1 != x2
        cache.delete_memoized(a1.add)  # only a1's results
        assert a1.add(3) != x1
        assert a2.add(3) == x2
        y1 = a1.add(4)
        cache.delete_memoized(a1.add, 4)  # a bound method supplies its instance
        assert a1.add(4) != y1
        y2 = a2.add(4)
        cache.delete_memoized(Adder.add, a2, 4)
        assert a2.add(4) != y2
        x2 = a2.add(3)
        cache.delete_memoized(Adder.add)  # every instance
        assert a2.add(3) != x2
        built = Adder.build(1)
        assert Adder.build(1) == built
        cache.delete_memoized(Adder.build, Adder, 1)
        assert Adder.build(1) != built


def test_delete_memoized_verhash(make_app: AppFactory) -> None:
    app, cache = make_app()

    @cache.memoize()
    def f(x: int) -> float:
        return time.monotonic()

    with app.app_context():
        first = f(1)
        version_key = f"{f.__module__}.{f.__qualname__}_memver".replace("<", "").replace(">", "")
        assert cache.get(version_key) is not None
        cache.delete_memoized_verhash(f)
        assert cache.get(version_key) is None
        assert f(1) != first


def test_memoize_keys_are_flask_cachings(make_app: AppFactory) -> None:
    """With the same version hash, both libraries compute the same memoize key."""
    app, cache = make_app()

    @cache.memoize()
    def price(item: str, qty: int = 1, *, currency: str = "EUR") -> str:
        return f"{item}x{qty}"

    with app.app_context():
        ns = f"{price.__module__}.{price.__qualname__}".replace("<", "").replace(">", "")
        cache.set(ns + "_memver", "VERSN0", timeout=0)
        key = price.make_cache_key(price.uncached, "tea", qty=2, currency="USD")
        kwargs = OrderedDict([("currency", "USD")])  # its repr differs from Python 3.12 on
        base = f"{ns}('tea', 2){kwargs!r}"
        import base64

        expected = base64.b64encode(hashlib.sha256(base.encode()).digest())[:16].decode()
        assert key == expected + "VERSN0"
        assert price("tea", qty=2, currency="USD") == "teax2"
        assert cache.get(key) == "teax2"


# -- fragments --------------------------------------------------------------------------------


def test_template_fragment_cache(make_app: AppFactory, impl: str) -> None:
    import importlib

    module = importlib.import_module(impl)
    app, cache = make_app()
    renders = Counter()
    template = "{% cache 60, 'sidebar', user %}{{ render() }}{% endcache %}"
    with app.test_request_context("/"):
        first = flask.render_template_string(template, render=renders, user="ada")
        assert flask.render_template_string(template, render=renders, user="ada") == first
        assert flask.render_template_string(template, render=renders, user="bob") != first
        key = module.make_template_fragment_key("sidebar", vary_on=["ada"])
        assert key == "_template_fragment_cache_sidebar_ada"
        assert cache.get(key) == first
        deleted = "{% cache 'del', 'sidebar', user %}{{ render() }}{% endcache %}"
        flask.render_template_string(deleted, render=renders, user="ada")
        assert cache.get(key) is None
        unnamed = "{% cache None %}{{ render() }}{% endcache %}"
        once = flask.render_template_string(unnamed, render=renders)
        assert flask.render_template_string(unnamed, render=renders) == once
