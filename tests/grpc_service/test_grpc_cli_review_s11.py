"""``cachekit serve`` review fixes: clear one-line errors for user mistakes, and ready lines
that can be used as they are (IPv6 brackets, the bound metrics port)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import urllib.request

import pytest

from cachekit import create_cache
from cachekit.__main__ import main
from cachekit.errors import ConfigurationError
from cachekit.grpc.cli import build_namespaces
from cachekit.grpc.server import CacheServer


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["a=memory://?max_entries=1", "a=memory://?max_entries=99"], "'a' is given twice"),
        (["default=memory://?max_entries=3"], "default namespace's URL is --url"),
    ],
)
def test_a_namespace_given_twice_is_an_error(extra: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build_namespaces("memory://", extra)


@pytest.mark.parametrize("token", [" s3cret", "s3cret ", "s3cret\n"])
@pytest.mark.parametrize("option", ["token", "admin_token"])
def test_a_token_with_outer_whitespace_is_refused(token: str, option: str) -> None:
    """The header's token is stripped before comparing: such a token never matched."""
    with pytest.raises(ConfigurationError, match=f"^{option} must not start or end") as info:
        CacheServer({"default": create_cache("memory://")}, port=0, **{option: token})
    assert info.value.key == option


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--namespace", "a=memory://", "--namespace", "a=memory://"], "'a' is given twice"),
        (["--namespace", "default=memory://"], "default namespace's URL is --url"),
        (["--token", " t0k"], "token must not start or end with whitespace"),
        (["--url", "redis://app:S3CRET@10.0.0.5:6379/x"], "redis://app:***@10.0.0.5:6379/x"),
    ],
)
def test_serve_user_mistakes_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], error: str
) -> None:
    assert main(["serve", "--port", "0", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cachekit serve: ")
    assert error in err
    assert err.count("\n") == 1
    assert "S3CRET" not in err


def _lines(proc: subprocess.Popen[str], count: int, timeout: float = 15.0) -> list[str]:
    """The first ``count`` lines of ``proc``'s stdout, "" for those not printed in time."""
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for _ in range(count):
            lines.append(proc.stdout.readline())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return [*lines[:count], *[""] * (count - len(lines))]


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_serve_prints_usable_addresses_of_grpc_and_metrics(host: str) -> None:
    if host == "::1" and not _ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    argv = ["serve", "--host", host, "--port", "0", "--metrics-port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cachekit", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        served, metrics = _lines(proc, 2)
        shown = f"[{host}]" if ":" in host else host
        assert served.startswith(f"cachekit: serving default on grpc://{shown}:"), served
        address = served.rsplit("grpc://", 1)[1].strip()
        cache = create_cache(f"grpc://{address}/default?timeout=5")
        cache.set("k", 1)
        cache.close()
        assert metrics.startswith(f"cachekit: metrics on http://{shown}:"), metrics
        url = metrics.split(" on ", 1)[1].strip()
        assert url.endswith("/metrics")
        assert not url.endswith(":0/metrics")
        with urllib.request.urlopen(url, timeout=5) as response:
            assert b"cachekit_grpc_calls_total" in response.read()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
