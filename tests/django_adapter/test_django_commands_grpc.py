"""``manage.py cachekit_grpc``: the project's cachekit aliases served over gRPC, for real."""

from __future__ import annotations

import io
import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

import cachekit
from cachekit.grpc.client import Unauthenticated

REPO = Path(__file__).resolve().parents[2]


def read_until(process: subprocess.Popen[str], pattern: str, timeout: float) -> re.Match[str]:
    """The first output line matching ``pattern``. Read from the pipe's descriptor, not its
    text wrapper: lines the wrapper had buffered are invisible to ``select``."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            chunk = os.read(fd, 65536).decode(errors="replace")
            if not chunk and process.poll() is not None:
                break
            seen += chunk
            for line in seen.splitlines():
                match = re.search(pattern, line)
                if match:
                    return match
    raise AssertionError(f"no {pattern!r} within {timeout} s; output: {seen}")


def test_serves_cachekit_aliases_until_sigterm() -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cachekit_test_settings",
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "django_adapter"), str(REPO)]),
        "CACHEKIT_GRPC_TOKEN": "t0ken",
    }
    process = subprocess.Popen(
        [sys.executable, "-u", "-W", "error", "-m", "django", "cachekit_grpc", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        match = read_until(
            process, r"listening on grpc://127\.0\.0\.1:(\d+) \(namespaces: (.*)\)", 30
        )
        port, names = int(match.group(1)), match.group(2)
        assert names == "default"  # locmem is not a cachekit backend: not served
        with cachekit.create_cache(f"grpc://127.0.0.1:{port}/default?token=t0ken") as remote:
            remote.set(":1:greeting", "hello")
            assert remote.get(":1:greeting") == "hello"
        intruder = cachekit.create_cache(f"grpc://127.0.0.1:{port}/default?token=wrong")
        with intruder, pytest.raises(Unauthenticated):
            intruder.get(":1:greeting")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert process.stdout is not None
        assert "cachekit gRPC stopped." in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-client-ca", "ca.pem"], "--tls-client-ca needs --tls-cert and --tls-key"),
        (["--tls-cert", "/no/cert.pem", "--tls-key", "/no/key.pem"], "no such file"),
        (["--port", "70000"], "--port must be 0-65535"),
        (["--metrics-port", "-1"], "--metrics-port must be 0-65535"),
        (["--alias", "locmem"], "not cachekit backends, cannot be served: locmem"),
        (["--alias", "nope"], "'nope' is not in settings.CACHES"),
        (["--token", ""], r"--token \(or \$CACHEKIT_GRPC_TOKEN\) is set but empty"),
        (["--admin-token", ""], "--admin-token .* is set but empty"),
    ],
)
def test_user_mistakes_are_command_errors(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("cachekit_grpc", *args, stdout=io.StringIO())


@override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}})
def test_nothing_to_serve_is_a_command_error() -> None:
    with pytest.raises(CommandError, match=r"no cachekit backend in settings\.CACHES to serve"):
        call_command("cachekit_grpc", stdout=io.StringIO())


def test_an_empty_token_variable_is_refused_not_served_unauthenticated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A secret that did not render leaves CACHEKIT_GRPC_TOKEN empty: that used to serve with
    no authentication at all (admin calls such as Flush included)."""
    monkeypatch.setenv("CACHEKIT_GRPC_TOKEN", "")
    with pytest.raises(CommandError, match="set but empty"):
        call_command("cachekit_grpc", stdout=io.StringIO())


def test_a_picked_metrics_port_is_printed() -> None:
    """--metrics-port 0 picked a port and never said which."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cachekit_test_settings",
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "django_adapter"), str(REPO)]),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "django",
            "cachekit_grpc",
            "--port",
            "0",
            "--metrics-port",
            "0",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        match = read_until(process, r"Prometheus metrics on (http://127\.0\.0\.1:\d+/metrics)", 30)
        with urllib.request.urlopen(match.group(1), timeout=10) as response:
            assert b"cachekit_grpc" in response.read()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
