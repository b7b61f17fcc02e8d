"""The committed generated code is what ``python -m cachekit.grpc.codegen`` makes (CI staleness)."""

from __future__ import annotations

from pathlib import Path

from cachekit.grpc.codegen import REPO_ROOT, generate, proto_files


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    written = generate(tmp_path)
    assert len(written) == 4 * len(proto_files()) == 8
    for path in written:
        committed = REPO_ROOT / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} is missing: run python -m cachekit.grpc.codegen"
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} is stale: run python -m cachekit.grpc.codegen"
        )
