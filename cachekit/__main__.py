"""The ``cachekit`` command line (also ``python -m cachekit``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: cachekit COMMAND [options]

commands:
  demo     serve a skewed page-view stream from the embedded memory cache and print its stats
  serve    serve caches over gRPC (cachekit serve --help)
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(USAGE, end="")
        return 0
    command, rest = args[0], args[1:]
    if command == "demo":
        from .demo import main as demo_main

        return demo_main(rest)
    if command == "serve":
        from .grpc.cli import main as serve_main

        return serve_main(rest)
    print(f"cachekit: unknown command {command!r}\n\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
