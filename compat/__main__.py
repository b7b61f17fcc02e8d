"""``python -m compat {django,flask,django-redis,all} [--baseline] [-- PYTEST_ARGS...]``;
see ``docs/compat.md``.

Exit status 0 when every suite's outcome matches ``compat/expected.toml``, 1 when it does not,
2 when a suite could not run (a patch that no longer matches, a wrong library version...).
Extra pytest arguments (``-- -k test_incr``) make the run partial: listed tests that did not run
are then not held against the list.
"""

from __future__ import annotations

import argparse
import sys
import time

from cachekit.testing.servers import find_binary

from . import django_redis_suite, django_suite, flask_suite
from ._common import CompatError, Verdict, load_expected

SUITES = {"django": django_suite, "flask": flask_suite, "django-redis": django_redis_suite}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compat", description=__doc__)
    parser.add_argument("suite", choices=[*SUITES, "all"])
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="run the unmodified upstream tests on the upstream library's own backends "
        "(checks the harness: everything should pass)",
    )
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args(argv)

    missing = [name for name in ("redis-server", "memcached") if find_binary(name) is None]
    if missing:
        print(f"compat: {', '.join(missing)} not found (apt-get install redis-server memcached)")
        return 2

    names = list(SUITES) if args.suite == "all" else [args.suite]
    reports: list[str] = []
    status = 0
    for name in names:
        start = time.monotonic()
        try:
            run = SUITES[name].run(list(args.pytest_args), baseline=args.baseline)
            expected = load_expected(f"{name}-baseline" if args.baseline else name)
            # A suite may run part of itself by its own choice (django-redis: settings variants)
            # and check the entries of that part only.
            narrow = getattr(SUITES[name], "narrow", None)
            if narrow is not None:
                expected = narrow(expected)
        except CompatError as exc:
            print(f"compat {name}: cannot run: {exc}", file=sys.stderr)
            status = max(status, 2)
            continue
        suite = f"{name} (baseline: upstream backends)" if args.baseline else name
        verdict = Verdict(suite, run, expected, partial=bool(args.pytest_args))
        report = verdict.report()
        report += f"\n{name}: {time.monotonic() - start:.1f}s in all (download, patch, servers)"
        print(report, flush=True)
        reports.append(report)
        if not verdict.ok:
            status = max(status, 1)
    if len(reports) > 1:
        print("\n== compat summary")
        for report in reports:
            print("\n".join(report.splitlines()[-2:]))
    return status


if __name__ == "__main__":
    sys.exit(main())
