"""``manage.py cachekit_grpc --token-file/--admin-token-file``, and the variables on their own:
tokens kept off the command line, where ``ps`` shows them. The resolution itself is the core's
(``tests/grpc_service/test_grpc_token_sources_s11.py``); here, the command's use of it."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from grpc_helpers import assert_token_guarded

REPO = Path(__file__).resolve().parents[2]
SECRET = "S3CRET-never-printed"


def _listening_port(process: subprocess.Popen[str]) -> tuple[int, str]:
    """The port of the "listening on" line, and the lines printed up to it."""
    assert process.stdout is not None
    seen = ""
    for _ in range(20):  # a note on the aliases not served comes first
        line = process.stdout.readline()
        seen += line
        match = re.search(r"listening on grpc://127\.0\.0\.1:(\d+) ", line)
        if match:
            return int(match.group(1)), seen
        if not line:
            break
    raise AssertionError(f"not listening; output: {seen}")


@pytest.mark.parametrize("source", ["file", "environment"])
def test_serves_with_tokens_from_a_file_or_the_environment(tmp_path: Path, source: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEKIT_GRPC_")}
    env["DJANGO_SETTINGS_MODULE"] = "cachekit_test_settings"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests" / "django_adapter"), str(REPO)])
    argv = [sys.executable, "-u", "-W", "error", "-m", "django", "cachekit_grpc", "--port", "0"]
    if source == "file":
        token, admin = "t0k-from-file", "adm1n-from-file"
        (tmp_path / "user").write_text(f"{token}\n")  # as a Kubernetes secret volume has it
        (tmp_path / "admin").write_text(f"{admin}\n")
        argv += ["--token-file", str(tmp_path / "user")]
        argv += ["--admin-token-file", str(tmp_path / "admin")]
        env["CACHEKIT_GRPC_TOKEN"] = wrong = "the-file-wins"
    else:
        token, admin, wrong = "t0k-from-env", "adm1n-from-env", "t0k-from-en"
        env["CACHEKIT_GRPC_TOKEN"], env["CACHEKIT_GRPC_ADMIN_TOKEN"] = token, admin
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        port, seen = _listening_port(process)
        assert_token_guarded(f"127.0.0.1:{port}", "default", token, admin, wrong=wrong, key=":1:k")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert process.stdout is not None
        seen += process.stdout.read()
        assert token not in seen
        assert admin not in seen
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture
def no_token_variables(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("CACHEKIT_GRPC_TOKEN", "CACHEKIT_GRPC_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"^--token-file '.*': cannot read it \(No such file or directory\)$"),
        ("\n", r"^--token-file '.*' is empty$"),
        (f"{SECRET}\n{SECRET}\n", "must be one word without whitespace or control characters"),
    ],
    ids=["missing", "empty", "two-lines"],
)
def test_a_bad_token_file_is_a_command_error(
    no_token_variables: pytest.MonkeyPatch, tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CommandError, match=message) as info:
        call_command("cachekit_grpc", "--token-file", str(path), stdout=io.StringIO())
    assert SECRET not in str(info.value)


def test_a_bad_admin_token_file_is_a_command_error(
    no_token_variables: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "admin").write_text(" \n")
    with pytest.raises(CommandError, match=r"^--admin-token-file '.*admin' is empty$"):
        call_command("cachekit_grpc", "--admin-token-file", str(tmp_path / "admin"))


def test_token_and_token_file_together_is_a_command_error(
    no_token_variables: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text("t0k\n")
    file = str(tmp_path / "token")
    with pytest.raises(CommandError, match=r"argument --token-file: not allowed with .*--token"):
        call_command("cachekit_grpc", "--token", SECRET, "--token-file", file)
    # as keyword arguments call_command does not parse them: the shared check still sees both
    with pytest.raises(CommandError, match="--token and --token-file are mutually exclusive"):
        call_command("cachekit_grpc", token=SECRET, token_file=file)


def test_a_variable_with_a_leading_space_is_a_command_error(
    no_token_variables: pytest.MonkeyPatch,
) -> None:
    """It was refused by the server with "token must not ...", which did not say where the
    token came from (a final newline is dropped, as a secret file's is)."""
    no_token_variables.setenv("CACHEKIT_GRPC_TOKEN", f" {SECRET}")
    with pytest.raises(CommandError, match=r"^\$CACHEKIT_GRPC_TOKEN must not start or end") as info:
        call_command("cachekit_grpc", stdout=io.StringIO())
    assert SECRET not in str(info.value)
