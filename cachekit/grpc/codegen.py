"""Regenerate the Python code of ``proto/cachekit/v1/*.proto``: ``python -m cachekit.grpc.codegen``.

protoc derives import paths from proto paths, so generating into the repository root puts the
code at ``cachekit/v1/`` importing ``from cachekit.v1 import ...``. Messages and stubs come with
``.pyi`` files from mypy-protobuf, so ``mypy --strict`` checks the code that uses them. Both
generators are pinned in the ``test`` extra (``grpcio-tools``, ``mypy-protobuf``): the output is
byte-for-byte reproducible, which ``tests/grpc_service/test_grpc_codegen.py`` checks (CI fails
when the committed files are stale).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PROTO_ROOT", "REPO_ROOT", "generate", "main", "proto_files"]

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "proto"


def proto_files(root: Path = PROTO_ROOT) -> list[Path]:
    """Every ``.proto`` of the versioned packages, sorted (relative to ``root``)."""
    return sorted(p.relative_to(root) for p in (root / "cachekit").rglob("*.proto"))


def _plugin(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: pip install 'cachekit[test]' (mypy-protobuf)")
    return found


def generate(out: Path = REPO_ROOT, root: Path = PROTO_ROOT) -> list[Path]:
    """Run protoc (grpcio-tools) over every proto into ``out``; return the files written."""
    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError as exc:  # pragma: no cover - the test extra has it
        raise SystemExit(f"grpcio-tools is missing ({exc}): pip install 'cachekit[test]'") from exc
    include = Path(grpc_tools.__file__).parent / "_proto"
    files = proto_files(root)
    argv = [
        "grpc_tools.protoc",
        f"-I{root}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out}",
        f"--mypy_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_grpc_out={out}",
        *(str(f) for f in files),
    ]
    if protoc.main(argv) != 0:
        raise SystemExit("protoc failed (its message is above)")
    written: list[Path] = []
    for proto in files:
        stem = out / proto.with_suffix("")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"):
            path = stem.parent / (stem.name + suffix)
            if path.exists():
                written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cachekit.grpc.codegen", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO_ROOT, help="output root (the repo)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
