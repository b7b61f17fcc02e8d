"""The example app (example_projects/flask_app/): through its test client, and once for real."""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

from cachekit.testing.servers import RedisServer, free_port

REPO = Path(__file__).resolve().parents[2]
APP_PATH = REPO / "example_projects" / "flask_app" / "app.py"
_loads = itertools.count()


def load_example(monkeypatch: pytest.MonkeyPatch, cachekit_url: str | None = None) -> ModuleType:
    """A fresh import of the example app (its config is read from the environment)."""
    if cachekit_url is None:
        monkeypatch.delenv("CACHEKIT_URL", raising=False)
    else:
        monkeypatch.setenv("CACHEKIT_URL", cachekit_url)
    monkeypatch.setenv("EXAMPLE_DB_DELAY", "0")
    spec = importlib.util.spec_from_file_location(f"flask_example_app_{next(_loads)}", APP_PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_example_app_caches_views_functions_and_fragments(
    backend: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    url = None
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        url = f"{server.url}?prefix=example_test:"
    example = load_example(monkeypatch, url)
    client = example.app.test_client()
    first = client.get("/").get_data(as_text=True)
    assert "Green tea" in first
    assert client.get("/").get_data(as_text=True) == first
    page = client.get("/product/3").get_data(as_text=True)
    assert "Hot chocolate" in page
    assert "Too sweet" in page
    client.get("/product/3")
    assert client.get("/product/99").status_code == 404
    assert "Green tea" in client.get("/search?q=TEA&x=1").get_data(as_text=True)
    client.get("/search?x=1&q=TEA")
    stats = client.get("/stats.json").get_json()
    assert stats["provider"] == backend
    # The index computed once (it memoized 3 products); /product/3 was a memoized hit;
    # /product/99 (a None, not cached) computed twice; the fragment rendered once.
    assert stats["computed"] == {"index": 1, "product": 4, "search": 1, "reviews": 1}
    assert stats["hits"] > 0
    html = client.get("/stats").get_data(as_text=True)
    # Every cell shows its figure: ``stats.items`` in Jinja is the dict's method, not the count.
    assert f"Cache stats ({backend})" in html
    for cell, field in (("items", "items"), ("hits", "hits"), ("misses", "misses")):
        assert f'<td id="{cell}">{stats[field]}</td>' in html
    assert f'<td id="hit-ratio">{stats["hit_ratio"]}</td>' in html
    assert "built-in method" not in html
    assert client.post("/invalidate").status_code == 302
    client.get("/")
    assert client.get("/stats.json").get_json()["computed"]["index"] == 2
    assert client.get("/metrics").status_code == 200
    with example.app.app_context():
        example.cache.clear()


def test_example_app_runs_under_flask_run() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "EXAMPLE_DB_DELAY": "0"}
    env.pop("CACHEKIT_URL", None)
    command = [sys.executable, "-m", "flask", "--app", str(APP_PATH), "run", "--port", str(port)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=REPO
    ) as proc:
        try:
            body = ""
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                        body = resp.read().decode()
                    break
                except OSError:
                    if proc.poll() is not None:
                        break
                    time.sleep(0.1)
            assert "Catalogue" in body
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=2) as resp:
                assert "Cache stats (memory)" in resp.read().decode()
        finally:
            proc.terminate()
            output, _ = proc.communicate(timeout=10)
    assert b"Running on http://127.0.0.1" in output
