"""What both suites share: pinned sdists, scripted patches, the pytest run and the verdict."""

from __future__ import annotations

import dataclasses
import difflib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

COMPAT_DIR = Path(__file__).resolve().parent
REPO_ROOT = COMPAT_DIR.parent
#: Downloads and work trees (git-ignored); ``CACHEKIT_COMPAT_CACHE`` moves it.
CACHE_DIR = Path(os.environ.get("CACHEKIT_COMPAT_CACHE", COMPAT_DIR / ".cache")).resolve()
EXPECTED_FILE = COMPAT_DIR / "expected.toml"


class CompatError(Exception):
    """The job could not run as declared (a patch that no longer matches, a wrong version...)."""


# -- the pinned upstream source ----------------------------------------------------------------


def check_installed(distribution: str, version: str) -> None:
    """The tests of one release only make sense against that release of the library."""
    try:
        found = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        found = None
    if found != version:
        raise CompatError(
            f"the suite comes from {distribution} {version}'s sdist, but {distribution} "
            f"{found or '(not installed)'} is installed; run it with 'tox -e compat', "
            f"or 'pip install {distribution}=={version}'"
        )


def fetch_sdist(requirement: str, stem: str) -> Path:
    """The sdist of ``requirement`` (``name==version``), downloaded once into the cache dir."""
    dest = CACHE_DIR / "sdists"
    path = dest / f"{stem}.tar.gz"
    if path.is_file():
        return path
    dest.mkdir(parents=True, exist_ok=True)
    print(f"compat: pip download {requirement} (sdist)", flush=True)
    subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--no-binary", ":all:", "--no-deps", requirement, "-d", str(dest),
        ],
        check=True,
    )  # fmt: skip
    if not path.is_file():
        raise CompatError(f"pip download {requirement} did not leave {path.name} in {dest}")
    return path


def extract(sdist: Path, members: Mapping[str, str], dest: Path) -> None:
    """Extract each ``members`` prefix of the sdist (``"django-5.2.19/tests/cache/"``) to the
    path under ``dest`` it maps to (``"cache/"``); ``dest`` is emptied first."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    found = dict.fromkeys(members, 0)
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            for prefix, target in members.items():
                if member.name.startswith(prefix):
                    out = dest / target / member.name[len(prefix) :]
                    out.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    if source is None:  # isfile() above: only a corrupt archive gets here
                        raise CompatError(f"{sdist.name}: cannot read {member.name}")
                    out.write_bytes(source.read())
                    found[prefix] += 1
    empty = [prefix for prefix, count in found.items() if count == 0]
    if empty:
        raise CompatError(f"{sdist.name} has no files under {empty}")


# -- scripted modifications of upstream files --------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Patch:
    """Replace ``old`` by ``new`` in ``path``: exactly ``count`` occurrences must be there.

    ``regex`` makes ``old`` a regular expression (``new`` then a replacement template). A count
    that no longer matches is an error, so a new upstream release cannot silently escape a
    modification (or gain an unmodified use of Django's or Flask-Caching's classes).
    """

    path: str
    old: str
    new: str
    count: int
    why: str
    regex: bool = False


def apply_patches(root: Path, patches: Iterable[Patch]) -> str:
    """Apply the patches in order; returns the unified diff of everything they changed."""
    originals: dict[str, str] = {}
    for patch in patches:
        file = root / patch.path
        text = file.read_text(encoding="utf-8")
        originals.setdefault(patch.path, text)
        pattern = patch.old if patch.regex else re.escape(patch.old)
        replacement = patch.new if patch.regex else (lambda _m, new=patch.new: new)
        new, n = re.subn(pattern, replacement, text)
        if n != patch.count:
            raise CompatError(
                f"patch of {patch.path} ({patch.why}): {patch.old!r} matched {n} times, "
                f"expected {patch.count}"
            )
        file.write_text(new, encoding="utf-8")
    diff: list[str] = []
    for rel, before in originals.items():
        after = (root / rel).read_text(encoding="utf-8")
        diff += difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"upstream/{rel}",
            f"patched/{rel}",
        )
    return "".join(diff)


# -- running pytest and judging the outcome ----------------------------------------------------


@dataclasses.dataclass
class Run:
    """What one pytest run produced: test id -> outcome, and each failure's first line."""

    outcomes: dict[str, str]
    messages: dict[str, str]
    returncode: int
    seconds: float


def run_pytest(
    workdir: Path,
    ini: str,
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    log_name: str,
) -> Run:
    """Run pytest in ``workdir`` with the ini text ``ini`` (never the repository's own pytest
    configuration), recording outcomes with :mod:`compat._plugin`."""
    ini_path = workdir / "pytest.ini"
    ini_path.write_text(ini, encoding="utf-8")
    results = workdir / "results.json"
    results.unlink(missing_ok=True)
    full_env = {
        **os.environ,
        **env,
        "COMPAT_RESULTS": str(results),
        # compat (the plugin, the Django settings) from the repository, then the upstream tests.
        "PYTHONPATH": os.pathsep.join(
            [str(REPO_ROOT), str(workdir), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    argv = [
        sys.executable, "-m", "pytest", "-c", str(ini_path), "--rootdir", str(workdir),
        "-p", "compat._plugin", "-q", "-rfE", "--no-header",
        "--tb=short", *args,
    ]  # fmt: skip
    log = workdir / log_name
    print(f"compat: {' '.join(argv[1:])}  (in {workdir}, output in {log})", flush=True)
    start = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.run(
            argv, check=False, cwd=workdir, env=full_env, stdout=out, stderr=subprocess.STDOUT
        )
    seconds = time.monotonic() - start
    tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-1:]
    print(f"compat: pytest exited {proc.returncode} after {seconds:.1f}s: {' '.join(tail)}")
    if not results.is_file():
        raise CompatError(f"pytest wrote no results (exit {proc.returncode}); see {log}")
    if proc.returncode not in (0, 1):  # 0: all passed, 1: some failed; else interrupted/broken
        raise CompatError(f"pytest did not finish its run (exit {proc.returncode}); see {log}")
    data = json.loads(results.read_text(encoding="utf-8"))
    return Run(data["outcomes"], data["messages"], proc.returncode, seconds)


def load_expected(suite: str) -> dict[str, str]:
    """``expected.toml``'s table for ``suite``: upstream test id -> why it fails with cachekit."""
    with open(EXPECTED_FILE, "rb") as f:
        table = tomllib.load(f).get(suite, {})
    bad = {k: v for k, v in table.items() if not isinstance(v, str) or not v.strip()}
    if bad:
        raise CompatError(f"{EXPECTED_FILE.name} [{suite}]: entries without a reason: {bad}")
    return dict(table)


@dataclasses.dataclass
class Verdict:
    suite: str
    run: Run
    expected: dict[str, str]
    partial: bool
    unexpected_failures: list[str] = dataclasses.field(default_factory=list)
    unexpected_passes: list[str] = dataclasses.field(default_factory=list)
    not_run: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        outcomes = self.run.outcomes
        self.unexpected_failures = sorted(
            t for t, o in outcomes.items() if o == "failed" and t not in self.expected
        )
        self.unexpected_passes = sorted(t for t in self.expected if outcomes.get(t) == "passed")
        # A listed test that was skipped or is gone cannot be checked: the list is stale.
        self.not_run = sorted(
            t for t in self.expected if outcomes.get(t) not in ("passed", "failed")
        )

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.run.outcomes.values() if o == outcome)

    @property
    def ok(self) -> bool:
        stale = [] if self.partial else self.not_run
        return not (self.unexpected_failures or self.unexpected_passes or stale)

    def report(self) -> str:
        failed = self.count("failed")
        expected_failed = failed - len(self.unexpected_failures)
        lines = [f"== compat {self.suite}"]
        for title, ids, show_message in (
            ("failed, not in expected.toml (a regression or a new difference)",
             self.unexpected_failures, True),
            ("listed in expected.toml but passed (remove the entry)",
             self.unexpected_passes, False),
            ("listed in expected.toml but not run (skipped or gone)"
             + (" [ignored: a partial run]" if self.partial else ""), self.not_run, False),
        ):  # fmt: skip
            if ids and self.partial and ids is self.not_run:
                lines.append(f"-- {len(ids)} {title}")
            elif ids:
                lines.append(f"-- {len(ids)} {title}:")
                for test_id in ids:
                    message = self.run.messages.get(test_id, "") if show_message else ""
                    lines.append(f"   {test_id}" + (f"\n       {message}" if message else ""))
        lines.append(
            f"{self.suite}: {self.count('passed')} passed, {failed} failed, "
            f"{self.count('skipped')} skipped ({expected_failed} of the failures expected, "
            f"{len(self.expected)} listed) in {self.run.seconds:.1f}s: "
            + ("OK" if self.ok else "FAILED")
        )
        return "\n".join(lines)
