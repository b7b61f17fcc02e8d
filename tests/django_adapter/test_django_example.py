"""The example Django site (example_projects/django_site/): its own tests, and a real launch.

Both run in subprocesses, since the site has its own settings module.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cachekit.testing.servers import RedisServer, free_port

SITE = Path(__file__).resolve().parents[2] / "example_projects" / "django_site"


def site_env(tmp_path: Path, cachekit_url: str | None = None) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in {"CACHEKIT_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env["CACHEKIT_EXAMPLE_DB"] = str(tmp_path / "db.sqlite3")
    if cachekit_url is not None:
        env["CACHEKIT_URL"] = cachekit_url
    return env


def run_site_tests(env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "manage.py", "test", "example_site"],
        cwd=SITE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Ran [1-9]\d* tests", result.stderr)
    assert "OK" in result.stderr


def test_site_tests_pass_on_the_memory_provider(tmp_path: Path) -> None:
    run_site_tests(site_env(tmp_path))


def test_site_tests_pass_on_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    run_site_tests(site_env(tmp_path, redis_server.url))


def read_line_with(process: subprocess.Popen[str], text: str, timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            seen.append(line)
            if text in line:
                return line
    raise AssertionError(f"no line with {text!r} within {timeout} s; output: {''.join(seen)}")


def test_serve_starts_the_site_and_prints_its_url(tmp_path: Path) -> None:
    port = free_port()
    process = start_serve(tmp_path, "--port", str(port))
    try:
        line = read_line_with(process, "cachekit example site:", timeout=30)
        url = f"http://127.0.0.1:{port}/"
        assert url in line
        assert (tmp_path / "db.sqlite3").exists()  # migrated before serving
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                first = opener.open(url, timeout=5).read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        second = opener.open(url, timeout=5).read().decode()
        assert "cache miss" in first
        assert "cache hit" in second
        assert "visited this page 2 times" in second
        assert opener.open(url + "products/", timeout=5).status == 200
        metrics = opener.open(url + "metrics", timeout=5).read().decode()
        assert 'cachekit_hits_total{cache="pages",provider="memory"}' in metrics
        css = opener.open(url + "static/admin/css/base.css", timeout=5)
        assert css.status == 200
    finally:
        assert stop(process), "the example site did not stop on SIGINT"


def start_serve(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-u", "manage.py", "serve", *args],
        cwd=SITE,
        env=site_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> bool:
    """SIGINT, as Ctrl-C; whether the server stopped on it (else it is killed)."""
    process.send_signal(signal.SIGINT)
    stopped = True
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
        process.kill()
        process.wait()
        stopped = False
    if process.stdout is not None:
        process.stdout.close()
    return stopped


def status_when_up(url: str, host_header: str | None = None) -> int:
    """The status ``url`` answers once the server listens (an HTTP error is an answer)."""
    request = urllib.request.Request(url, headers={"Host": host_header} if host_header else {})
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_serve_port_0_picks_a_free_port_and_prints_it(tmp_path: Path) -> None:
    """--port 0 was refused ('must be 1-65535'), where every other server command takes it."""
    process = start_serve(tmp_path, "--port", "0")
    try:
        line = read_line_with(process, "cachekit example site:", timeout=30)
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found is not None, line
        port = int(found.group(1))
        assert port != 0
        assert status_when_up(f"http://127.0.0.1:{port}/") == 200
    finally:
        stop(process)


@pytest.mark.parametrize(
    ("host", "opened"),
    [("127.0.0.2", "127.0.0.2"), ("0.0.0.0", "127.0.0.1")],
)
def test_serve_on_another_address_prints_a_url_that_answers(
    tmp_path: Path, host: str, opened: str
) -> None:
    """The printed URL answered 400: the address was not in the site's ALLOWED_HOSTS."""
    port = free_port()
    process = start_serve(tmp_path, "--host", host, "--port", str(port))
    try:
        line = read_line_with(process, "cachekit example site:", timeout=30)
        url = f"http://{opened}:{port}/"
        assert url in line
        read_line_with(process, "demo", timeout=5)  # says what it allowed, and why
        assert status_when_up(url) == 200
        if host == "0.0.0.0":  # other machines name this one as they know it
            assert status_when_up(url, host_header=f"192.0.2.7:{port}") == 200
    finally:
        stop(process)
