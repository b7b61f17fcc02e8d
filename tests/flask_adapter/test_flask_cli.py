"""``flask cachekit ...`` through Flask's CLI runner, on the memory provider and real Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import flask
import pytest

import cachekit
import cachekit_flask
from cachekit.testing.servers import MemcachedServer, RedisServer, free_port
from cachekit_flask.cli import app_caches

REPO = Path(__file__).resolve().parents[2]

#: Called by ``warm --callable`` (a dotted path importable from this test module).
WARMED: list[str] = []


def warm_up() -> str:
    WARMED.append(flask.current_app.name)
    return "warmed"


def warm_into_the_cache() -> None:
    """A warm-up that writes through the app's cache (its server may be down)."""
    for ext, _ in app_caches(flask.current_app):
        ext.set("warm", 1)


def build(**config: Any) -> tuple[flask.Flask, cachekit_flask.Cache]:
    app = flask.Flask("cli")
    app.config.update(config or {"CACHEKIT_URL": "memory://clicache"})
    return app, cachekit_flask.Cache(app)


def test_stats_text_and_json() -> None:
    app, cache = build()
    with app.app_context():
        cache.set("a", 1)
        cache.get("a")
        cache.get("missing")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["cachekit", "stats"])
    assert result.exit_code == 0, result.output
    assert "clicache (memory)" in result.output
    assert "hits         1" in result.output
    result = runner.invoke(args=["cachekit", "stats", "--json"])
    stats = json.loads(result.output)
    assert stats["name"] == "clicache"
    assert stats["hits"] == 1
    assert stats["misses"] == 1
    result = runner.invoke(args=["cachekit", "stats", "--cache", "nope"])
    assert result.exit_code != 0
    assert "clicache" in result.output


def test_stats_of_an_unreachable_server_fail_instead_of_showing_an_empty_cache() -> None:
    """A down Redis answered 'items 0 ... memory_bytes 0', exit 0: an empty, healthy cache to a
    health check. As manage.py cachekit_stats: '-' for the server's figures, the reason, exit 1."""
    app, _ = build(CACHEKIT_URL=f"redis://127.0.0.1:{free_port()}/0")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["cachekit", "stats"])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert "  items        -" in lines
    assert "  memory_bytes -" in lines
    assert "  evictions    -" in lines
    assert "  hits         0" in lines  # the client's own counters are still shown
    assert any(line.startswith("  server unreachable: ") for line in lines)
    assert "Error: could not read the statistics of 1 cache(s): default: server unreachable: " in (
        result.output
    )
    assert "Traceback" not in result.output
    result = runner.invoke(args=["cachekit", "stats", "--json"])
    assert result.exit_code == 1
    stats = json.loads(result.stdout)
    assert stats["error"].startswith("server unreachable: ")


@pytest.mark.parametrize(
    "args",
    [
        ["clear"],
        ["clear", "--tag", "pages"],
        ["clear", "--pattern", "page:*"],
        ["warm", "--callable", f"{__name__}:warm_into_the_cache"],
    ],
    ids=["clear", "clear-tag", "clear-pattern", "warm-callable"],
)
def test_an_unreachable_server_is_a_one_line_error(args: list[str]) -> None:
    """These dumped a 60-line traceback of the driver's connection error."""
    app, _ = build(CACHEKIT_URL=f"redis://127.0.0.1:{free_port()}/0")
    result = app.test_cli_runner().invoke(args=["cachekit", *args])
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, cachekit.CacheError)  # handled, not raised
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ")
    assert "cache 'default': " in line
    assert "Connection refused" in line


def test_clear_all_by_pattern_and_by_tag(redis_server: RedisServer) -> None:
    app, cache = build(
        CACHE_TYPE="RedisCache", CACHE_REDIS_URL=redis_server.url, CACHE_KEY_PREFIX="cli_"
    )
    runner = app.test_cli_runner()
    with app.app_context():
        cache.set("session:1", 1)
        cache.set("session:2", 2)
        cache.set("page:1", 3, tags=["pages"])
        cache.set("keep", 4)
    result = runner.invoke(args=["cachekit", "clear", "--pattern", "session:*"])
    assert result.exit_code == 0, result.output
    assert "2 key(s)" in result.output
    result = runner.invoke(args=["cachekit", "clear", "--tag", "pages"])
    assert "1 key(s) tagged pages" in result.output
    with app.app_context():
        assert cache.get_many("session:1", "page:1", "keep") == [None, None, 4]
    assert runner.invoke(args=["cachekit", "clear"]).exit_code == 0
    with app.app_context():
        assert cache.get("keep") is None


def test_clear_by_pattern_on_memcached_is_a_usage_error(memcached_server: MemcachedServer) -> None:
    app, _ = build(
        CACHE_TYPE="MemcachedCache",
        CACHE_MEMCACHED_SERVERS=[f"{memcached_server.host}:{memcached_server.port}"],
    )
    result = app.test_cli_runner().invoke(args=["cachekit", "clear", "--pattern", "*"])
    assert result.exit_code == 2
    assert "cannot select keys" in result.output


def test_warm_urls_and_callable(tmp_path: Path) -> None:
    app, cache = build()
    calls: list[int] = []

    @app.get("/page/<int:n>")
    @cache.cached()
    def page(n: int) -> str:
        calls.append(n)
        return f"page {n}"

    urls = tmp_path / "urls.txt"
    urls.write_text("/page/1\n# a comment\n\n/page/2\n")
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["cachekit", "warm", "--urls", str(urls), "--callable", f"{__name__}:warm_up"]
    )
    assert result.exit_code == 0, result.output
    assert "200 /page/1" in result.output
    assert "called" in result.output
    assert calls == [1, 2]
    assert WARMED == ["cli"]
    with app.app_context():
        assert cache.get("view//page/2") == "page 2"
    urls.write_text("/missing\n")
    result = runner.invoke(args=["cachekit", "warm", "--urls", str(urls)])
    assert result.exit_code == 1
    assert "404 /missing" in result.output
    assert runner.invoke(args=["cachekit", "warm"]).exit_code == 2
    result = runner.invoke(args=["cachekit", "warm", "--callable", "no.such.module:f"])
    assert result.exit_code == 2
    assert "cannot import" in result.output


def test_inspect(redis_server: RedisServer) -> None:
    app, cache = build(
        CACHE_TYPE="RedisCache", CACHE_REDIS_URL=redis_server.url, CACHE_KEY_PREFIX="insp_"
    )
    with app.app_context():
        cache.set("user:1", {"name": "Ada"}, timeout=100)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["cachekit", "inspect", "user:1"])
    assert result.exit_code == 0, result.output
    assert "value_type   dict" in result.output
    assert "serializer   pickle" in result.output
    ttl_line = next(line for line in result.output.splitlines() if "ttl" in line)
    assert 90 < float(ttl_line.split()[1].rstrip("s")) <= 100
    result = runner.invoke(args=["cachekit", "inspect", "nope"])
    assert result.exit_code == 1
    assert "not found" in result.output
    with app.app_context():
        cache.clear()


def test_no_cache_is_a_usage_error() -> None:
    app = flask.Flask("nocache")
    cache = cachekit_flask.Cache()
    cache.init_app(app)
    app.extensions["cachekit"].clear()
    result = app.test_cli_runner().invoke(args=["cachekit", "stats"])
    assert result.exit_code == 2
    assert "no cachekit_flask.Cache" in result.output


_SERVE_APP = """
import flask, cachekit_flask
app = flask.Flask("grpcapp")
app.config["CACHEKIT_URL"] = "memory://pages"
cache = cachekit_flask.Cache(app)
"""


def test_serve_grpc_for_real(tmp_path: Path) -> None:
    pytest.importorskip("cachekit.grpc.server", reason="cachekit.grpc.server not built yet")
    (tmp_path / "grpcapp.py").write_text(_SERVE_APP)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}", "FLASK_APP": "grpcapp"}
    with subprocess.Popen(
        [sys.executable, "-m", "flask", "cachekit", "serve-grpc", "--port", "0", "--token", "t"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("serving pages on 127.0.0.1:"), line
            port = int(line.rsplit(":", 1)[1])
            client = cachekit.create_cache(f"grpc://127.0.0.1:{port}/pages?token=t")
            client.set("k", "over grpc")
            assert client.get("k") == "over grpc"
            client.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                _, stderr = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr


@pytest.mark.parametrize(
    ("args", "env"),
    [
        ([], {"CACHEKIT_GRPC_TOKEN": ""}),
        ([], {"CACHEKIT_GRPC_ADMIN_TOKEN": ""}),
        (["--token", ""], {}),
    ],
    ids=["empty-env-token", "empty-env-admin-token", "empty-option"],
)
def test_serve_grpc_refuses_an_empty_token(args: list[str], env: dict[str, str]) -> None:
    """click reads an empty variable as unset, which served without authentication: a secret
    that failed to render must not open the service, admin calls included."""
    app, _ = build()
    result = app.test_cli_runner().invoke(
        args=["cachekit", "serve-grpc", "--port", "0", *args], env=env
    )
    assert result.exit_code == 2, result.output
    assert "set but empty" in result.output
