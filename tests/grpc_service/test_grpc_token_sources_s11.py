"""``cachekit serve`` takes its tokens from a file or the environment, not only from the command
line (where ``ps`` and shell history show them); the Django and Flask commands share the same
resolution (``cachekit.grpc.cli.resolve_token``), tested here once with every error case."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from grpc_helpers import assert_token_guarded

from cachekit.__main__ import main
from cachekit.errors import ConfigurationError
from cachekit.grpc.cli import resolve_token, resolve_tokens

SECRET = "S3CRET-never-printed"


def _file(tmp_path: Path, content: bytes, name: str = "token") -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize(
    "content", [b"t0k\n", b"t0k", b"t0k\r\n", b"  t0k \n\n", b"\tt0k"], ids=repr
)
def test_a_token_file_is_read_without_its_surrounding_whitespace(
    tmp_path: Path, content: bytes
) -> None:
    """Docker and Kubernetes secret files end in a newline: it is not part of the token."""
    assert resolve_token("--token", None, _file(tmp_path, content), "T", {}) == "t0k"


def test_the_option_then_the_file_then_the_environment(tmp_path: Path) -> None:
    env = {"T": "from-env"}
    assert resolve_token("--token", "from-option", None, "T", env) == "from-option"
    file = _file(tmp_path, b"from-file\n")
    assert resolve_token("--token", None, file, "T", env) == "from-file"
    assert resolve_token("--token", None, None, "T", env) == "from-env"
    assert resolve_token("--token", None, None, "T", {}) is None


def test_the_default_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHEKIT_GRPC_TOKEN", "user")
    monkeypatch.setenv("CACHEKIT_GRPC_ADMIN_TOKEN", "boss")
    given = {"token": None, "token_file": None, "admin_token": None, "admin_token_file": None}
    assert resolve_tokens(**given) == ("user", "boss")


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", r"^--token-file '.*token' is empty$"),
        (b" \n\n", r"^--token-file '.*token' is empty$"),
        (SECRET.encode() + b"\n" + SECRET.encode(), "one word without whitespace"),
        (f"TOKEN={SECRET} # ours\n".encode(), "one word without whitespace"),
        (SECRET.encode() + b"\x00", "one word without whitespace or control characters"),
        (b"\xff" + SECRET.encode(), "not UTF-8 text"),
        (b"x" * (64 * 1024 + 1), "over 65536 bytes, not a token file"),
    ],
    ids=["empty", "blank", "two-lines", "env-file", "nul", "binary", "huge"],
)
def test_a_bad_token_file_is_named_and_its_content_is_not_shown(
    tmp_path: Path, content: bytes, error: str
) -> None:
    path = _file(tmp_path, content)
    with pytest.raises(ConfigurationError, match=error) as info:
        resolve_token("--token", None, path, "T", {})
    assert path in str(info.value)
    assert SECRET not in str(info.value)
    assert info.value.key == "token_file"


def test_an_unreadable_token_file_says_why(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    with pytest.raises(ConfigurationError, match=r"cannot read it \(No such file or directory\)"):
        resolve_token("--admin-token", None, missing, "T", {})
    with pytest.raises(ConfigurationError, match=r"^--admin-token-file '.*': cannot read it"):
        resolve_token("--admin-token", None, str(tmp_path), "T", {})  # a directory


@pytest.mark.parametrize(
    ("given", "file", "env", "error"),
    [
        (SECRET, "f", {}, r"^--token and --token-file are mutually exclusive$"),
        ("", None, {}, r"^--token \(or \$T\) is set but empty"),
        (None, None, {"T": ""}, r"^--token \(or \$T\) is set but empty"),
        (f" {SECRET}", None, {}, r"^--token must not start or end with whitespace$"),
        (None, None, {"T": f"\t{SECRET}"}, r"^\$T must not start or end with whitespace$"),
    ],
    ids=["both", "empty-option", "empty-variable", "spaced-option", "spaced-variable"],
)
def test_option_and_variable_mistakes(
    given: str | None, file: str | None, env: dict[str, str], error: str
) -> None:
    with pytest.raises(ConfigurationError, match=error) as info:
        resolve_token("--token", given, file, "T", env)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "case",
    [
        (["--token-file", "/nonexistent/token"], {}, "--token-file '/nonexistent/token': cannot"),
        (["--admin-token-file", "{empty}"], {}, "--admin-token-file '{empty}' is empty"),
        ([], {"CACHEKIT_GRPC_TOKEN": ""}, "--token (or $CACHEKIT_GRPC_TOKEN) is set but empty"),
        (
            [],
            {"CACHEKIT_GRPC_ADMIN_TOKEN": f" {SECRET}"},
            "$CACHEKIT_GRPC_ADMIN_TOKEN must not start or end with whitespace",
        ),
    ],
    ids=["missing-file", "empty-admin-file", "empty-variable", "spaced-admin-variable"],
)
def test_serve_mistakes_are_one_line_errors(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    case: tuple[list[str], dict[str, str], str],
) -> None:
    argv, env, error = case
    empty = _file(tmp_path, b"\n")
    for name in ("CACHEKIT_GRPC_TOKEN", "CACHEKIT_GRPC_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    argv = [arg.replace("{empty}", empty) for arg in argv]
    assert main(["serve", "--port", "0", *argv]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("cachekit serve: ")
    assert error.replace("{empty}", empty) in err
    assert err.count("\n") == 1
    assert SECRET not in out + err


def test_token_and_token_file_together_is_an_argparse_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    file = _file(tmp_path, b"t0k\n")
    with pytest.raises(SystemExit) as info:
        main(["serve", "--port", "0", "--token", SECRET, "--token-file", file])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --token-file: not allowed with argument --token" in err
    assert SECRET not in err


@pytest.mark.parametrize("source", ["file", "environment"])
def test_serve_takes_its_tokens_from_a_file_or_the_environment(tmp_path: Path, source: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEKIT_GRPC_")}
    argv = [sys.executable, "-m", "cachekit", "serve", "--port", "0"]
    if source == "file":
        token, admin = "t0k-from-file", "adm1n-from-file"
        argv += ["--token-file", _file(tmp_path, f"{token}\n".encode(), "user")]
        argv += ["--admin-token-file", _file(tmp_path, f"{admin}\r\n".encode(), "admin")]
        env["CACHEKIT_GRPC_TOKEN"] = wrong = "the-file-wins"
    else:
        token, admin, wrong = "t0k-from-env", "adm1n-from-env", "t0k-from-en"
        env["CACHEKIT_GRPC_TOKEN"], env["CACHEKIT_GRPC_ADMIN_TOKEN"] = token, admin
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("cachekit: serving default on grpc://127.0.0.1:"), line
        assert_token_guarded(
            line.rsplit("grpc://", 1)[1].strip(), "default", token, admin, wrong=wrong
        )
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert token not in line + out + err
        assert admin not in line + out + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_a_variable_mounted_from_a_secret_file_loses_its_final_newline(ending: str) -> None:
    """Review finding: Kubernetes secretKeyRef variables often end in a newline, as files do."""
    assert resolve_token("--token", None, None, "T", {"T": SECRET + ending}) == SECRET
