"""``CACHE_TYPE="FileSystemCache"``: Flask-Caching's and cachekit_flask's, through the same checks.

Every test of ``test_flask_decorators.py`` runs here again: pytest resolves a test's fixtures in
the module that collects it, so the ``make_app`` below hands them apps on ``FileSystemCache``
(a fresh ``CACHE_DIR`` per app) under both extensions (``impl``). Then what is particular to the
backend: a directory shared by apps, ``CACHE_THRESHOLD``, and how the keys map onto cachekit's
``file://`` provider.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import flask
import pytest
import test_flask_decorators as decorator_checks
from flask_support import IMPLS, AppFactory

import cachekit_flask
from cachekit.providers.filesystem import FileCache

# The decorator checks, collected in this module too (see the module docstring).
globals().update(
    {name: test for name, test in vars(decorator_checks).items() if name.startswith("test_")}
)


@pytest.fixture
def make_app(impl: str, tmp_path: Path) -> Iterator[AppFactory]:
    """``make_app(**config) -> (app, cache)`` on FileSystemCache, each app in its own dir."""
    made: list[tuple[flask.Flask, Any]] = []

    def factory(**config: Any) -> tuple[flask.Flask, Any]:
        app = flask.Flask(f"fs{len(made)}")
        app.config.update(
            {
                "CACHE_TYPE": "FileSystemCache",
                "CACHE_DIR": str(tmp_path / f"{impl}-{len(made)}"),
                **config,
            }
        )
        cache = IMPLS[impl](app)
        made.append((app, cache))
        return app, cache

    yield factory
    for app, cache in made:
        with app.app_context():
            cache.clear()


# -- both extensions ---------------------------------------------------------------------------


def test_apps_on_one_cache_dir_share_entries(impl: str, tmp_path: Path) -> None:
    config = {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(tmp_path / "shared")}
    writer, reader = flask.Flask("writer"), flask.Flask("reader")
    writer.config.update(config)
    reader.config.update(config)
    writer_cache, reader_cache = IMPLS[impl](writer), IMPLS[impl](reader)

    @reader.route("/page")
    @reader_cache.cached()
    def page() -> str:
        return "computed by the reader"

    with writer.app_context():
        writer_cache.set("view//page", "rendered by the writer")
    assert reader.test_client().get("/page").data == b"rendered by the writer"
    with reader.app_context():
        reader_cache.delete("view//page")
    with writer.app_context():
        assert writer_cache.get("view//page") is None


def test_proxies_answer_alike(make_app: AppFactory) -> None:
    app, cache = make_app()
    with app.app_context():
        assert cache.get("missing") is None
        assert cache.set("a", {"n": 1}) is True
        assert (cache.get("a"), cache.has("a"), cache.has("missing")) == ({"n": 1}, True, False)
        assert (cache.add("a", 2), cache.add("b", 2)) == (False, True)
        assert cache.delete("a") is True
        # Deleting an absent key: cachelib's FileSystemCache says True ("absent now"), cachekit
        # False ("nothing removed", as SimpleCache and Redis say); both leave it absent.
        cache.delete("a")
        assert sorted(cache.set_many({"k1": 1, "k2": None}, timeout=timedelta(seconds=30))) == [
            "k1",
            "k2",
        ]
        assert cache.get_many("k1", "nope") == [1, None]
        assert cache.get_dict("k1", "nope") == {"k1": 1, "nope": None}
        assert cache.delete_many("k1", "zz") == ["k1", "zz"]
        assert cache.unlink("b") == ["b"]
        assert cache.clear() is True
        assert cache.get_many("a", "b", "k2") == [None, None, None]


def test_threshold_bounds_the_entries(make_app: AppFactory) -> None:
    app, cache = make_app(CACHE_THRESHOLD=5)
    with app.app_context():
        for n in range(20):
            cache.set(f"k{n}", n)
        kept = [n for n in range(20) if cache.get(f"k{n}") is not None]
    # cachelib prunes before writing, so it may hold threshold + 1; cachekit at most threshold
    assert 1 <= len(kept) <= 6
    assert 19 in kept


def test_default_timeout_applies(make_app: AppFactory) -> None:
    # 2 s, not 1: cachelib stores int(time()) + timeout, so a 1 s entry written late in a second
    # can read as expired at once (this failed once for Flask-Caching's side under CI load).
    app, cache = make_app(CACHE_DEFAULT_TIMEOUT=2)
    with app.app_context():
        cache.set("short", 1)
        cache.set("forever", 1, timeout=0)
        assert cache.get("short") == 1
    time.sleep(2.1)
    with app.app_context():
        assert cache.get("short") is None
        assert cache.get("forever") == 1


# -- how cachekit_flask maps the keys ------------------------------------------------------------


def build(**config: Any) -> tuple[flask.Flask, cachekit_flask.Cache]:
    app = flask.Flask("filesystem")
    app.config.update({"CACHE_TYPE": "FileSystemCache", **config})
    return app, cachekit_flask.Cache(app)


def test_keys_map_onto_the_file_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app, cache = build(
        CACHE_DIR="relative/dir",
        CACHE_THRESHOLD=42,
        CACHE_DEFAULT_TIMEOUT=120,
        CACHE_OPTIONS={"mode": 0o640},
        CACHE_SERIALIZER="json",
    )
    core = cache.cache
    assert isinstance(core, FileCache)
    assert core.directory == str(tmp_path / "relative" / "dir")  # resolved in init_app
    assert (core.max_entries, core.default_ttl, core.mode) == (42, 120, 0o640)
    assert core.serializer.name == "json"  # type: ignore[attr-defined]
    with app.app_context():
        cache.set("k", {"v": 1})
        assert cache.get("k") == {"v": 1}
    files = [p for p in (tmp_path / "relative" / "dir").iterdir() if p.suffix == ".ckc"]
    assert [stat.S_IMODE(p.stat().st_mode) for p in files] == [0o640]


def test_ignore_errors_maps_to_fail_open(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    app, cache = build(CACHE_DIR=str(blocked), CACHE_IGNORE_ERRORS=True)
    blocked.write_text("a file where the cache directory should be: every write fails")
    with app.app_context():
        assert cache.set("k", 1) is True  # dropped and counted, as Flask-Caching's True
        assert cache.get("k") is None
    assert cache.get_stats().extra["fail_open_set_errors_total"] == 1


def test_threshold_zero_means_unbounded(tmp_path: Path) -> None:
    _, cache = build(CACHE_DIR=str(tmp_path), CACHE_THRESHOLD=0)
    assert cache.cache.max_entries is None  # type: ignore[attr-defined]


def test_clear_leaves_other_files_in_the_dir(tmp_path: Path) -> None:
    """cachelib's clear() empties the whole directory; cachekit's removes only its entries."""
    (tmp_path / "keep.txt").write_text("not a cache file")
    app, cache = build(CACHE_DIR=str(tmp_path))
    with app.app_context():
        cache.set_many({"a": 1, "b": 2})
        assert cache.clear() is True
        assert cache.get_many("a", "b") == [None, None]
    assert (tmp_path / "keep.txt").read_text() == "not a cache file"


def test_tags_and_patterns_work_on_files(tmp_path: Path) -> None:
    app, cache = build(CACHE_DIR=str(tmp_path))

    @app.route("/products/<int:n>")
    @cache.cached(tags=["catalog"])
    def product(n: int) -> str:
        return f"product {n}"

    client = app.test_client()
    client.get("/products/1")
    client.get("/products/2")
    with app.app_context():
        cache.set("other", 1)
        assert cache.invalidate_tags(["catalog"]) == 2
        assert cache.get("view//products/1") is None
        assert cache.delete_pattern("oth*") == 1
