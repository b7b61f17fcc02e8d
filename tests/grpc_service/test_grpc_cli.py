"""``cachekit serve`` as a real process: a client in this process talks to it; SIGTERM stops it."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from cachekit import create_cache
from cachekit.__main__ import main
from cachekit.errors import ConfigurationError
from cachekit.grpc.cli import build_namespaces


def test_serve_subprocess_then_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cachekit",
            "serve",
            "--port",
            "0",
            "--token",
            "t0k",
            "--namespace",
            "sessions=memory://?max_entries=100",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("cachekit: serving default, sessions on grpc://127.0.0.1:"), line
        address = line.rsplit("grpc://", 1)[1].strip()
        for namespace in ("default", "sessions"):
            cache = create_cache(f"grpc://{address}/{namespace}?token=t0k")
            cache.set("k", {"from": "another process"})
            assert cache.get("k") == {"from": "another process"}
            assert cache.incr("n", 3) == 3
            cache.close()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "cachekit: stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_refuses_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--url", "memory://?max_entriez=1", "--port", "0"]) == 2
    assert "max_entriez" in capsys.readouterr().err
    assert main(["serve", "--tls-cert", "/nonexistent.pem", "--port", "0"]) == 2
    assert "tls_key" in capsys.readouterr().err


def test_namespace_specs() -> None:
    namespaces = build_namespaces("memory://", ["a=memory://?max_entries=5"])
    assert namespaces.names() == ["a", "default"]
    assert namespaces.get("a").cache.name == "a"
    with pytest.raises(ConfigurationError, match="NAME=URL"):
        build_namespaces("memory://", ["nourl"])
