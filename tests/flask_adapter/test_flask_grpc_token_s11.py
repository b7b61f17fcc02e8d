"""``flask cachekit serve-grpc --token-file/--admin-token-file``, and the variables on their own:
tokens kept off the command line, where ``ps`` shows them. The resolution itself is the core's
(``tests/grpc_service/test_grpc_token_sources_s11.py``); here, the command's use of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import flask
import pytest
from grpc_helpers import assert_token_guarded

import cachekit_flask

REPO = Path(__file__).resolve().parents[2]
SECRET = "S3CRET-never-printed"

_SERVE_APP = """
import flask, cachekit_flask
app = flask.Flask("grpcapp")
app.config["CACHEKIT_URL"] = "memory://pages"
cache = cachekit_flask.Cache(app)
"""


@pytest.mark.parametrize("source", ["file", "environment"])
def test_serves_with_tokens_from_a_file_or_the_environment(tmp_path: Path, source: str) -> None:
    (tmp_path / "grpcapp.py").write_text(_SERVE_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEKIT_GRPC_")}
    env.update({"PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}", "FLASK_APP": "grpcapp"})
    argv = [sys.executable, "-m", "flask", "cachekit", "serve-grpc", "--port", "0"]
    if source == "file":
        token, admin = "t0k-from-file", "adm1n-from-file"
        (tmp_path / "user").write_text(f"{token}\n")  # as a Docker secret has it
        (tmp_path / "admin").write_text(f"{admin}\n")
        argv += ["--token-file", str(tmp_path / "user")]
        argv += ["--admin-token-file", str(tmp_path / "admin")]
        env["CACHEKIT_GRPC_TOKEN"] = wrong = "the-file-wins"
    else:
        token, admin, wrong = "t0k-from-env", "adm1n-from-env", "t0k-from-en"
        env["CACHEKIT_GRPC_TOKEN"], env["CACHEKIT_GRPC_ADMIN_TOKEN"] = token, admin
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("serving pages on 127.0.0.1:"), line
        address = f"127.0.0.1:{int(line.rsplit(':', 1)[1])}"
        assert_token_guarded(address, "pages", token, admin, wrong=wrong)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert token not in line + out + err
        assert admin not in line + out + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--token-file", "{missing}"], {}, "--token-file '{missing}': cannot read it"),
        (["--token-file", "{empty}"], {}, "--token-file '{empty}' is empty"),
        (["--admin-token-file", "{empty}"], {}, "--admin-token-file '{empty}' is empty"),
        (["--token-file", "{two_lines}"], {}, "must be one word without whitespace"),
        (
            ["--token", SECRET, "--token-file", "{empty}"],
            {},
            "--token and --token-file are mutually exclusive",
        ),
        (
            [],
            {"CACHEKIT_GRPC_TOKEN": f" {SECRET}"},
            "$CACHEKIT_GRPC_TOKEN must not start or end with whitespace",
        ),
    ],
    ids=["missing", "empty", "empty-admin", "two-lines", "both", "spaced-variable"],
)
def test_token_source_mistakes_are_usage_errors(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    files = {
        "missing": str(tmp_path / "missing"),
        "empty": str(tmp_path / "empty"),
        "two_lines": str(tmp_path / "two_lines"),
    }
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "two_lines").write_text(f"{SECRET}\n{SECRET}\n")
    app = flask.Flask("tokens")
    app.config["CACHEKIT_URL"] = "memory://tokens"
    cachekit_flask.Cache(app)
    result = app.test_cli_runner().invoke(
        args=["cachekit", "serve-grpc", "--port", "0", *[a.format(**files) for a in args]],
        env={"CACHEKIT_GRPC_TOKEN": None, "CACHEKIT_GRPC_ADMIN_TOKEN": None, **env},
    )
    assert result.exit_code == 2, result.output
    assert message.format(**files) in result.output
    assert SECRET not in result.output
