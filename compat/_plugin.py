"""pytest plugin (``-p compat._plugin``): each test id's outcome, written to ``$COMPAT_RESULTS``.

A test is ``failed`` if any of its phases (setup, call, teardown) or any of its subtests
(``self.subTest`` in Django's tests) failed or errored, else ``skipped`` if it was skipped, else
``passed``. A module that cannot be collected is recorded as a failure under its own id.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

_RANK = {"passed": 0, "skipped": 1, "failed": 2}
_outcomes: dict[str, str] = {}
_messages: dict[str, str] = {}


def _message(report: Any) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = str(crash.message) if crash is not None else str(report.longrepr or "")
    lines = [line for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else "")[:300]


def _record(nodeid: str, outcome: str, report: Any) -> None:
    previous = _outcomes.get(nodeid)
    if previous is None or _RANK[outcome] > _RANK[previous]:
        _outcomes[nodeid] = outcome
    if outcome == "failed" and nodeid not in _messages:
        _messages[nodeid] = _message(report)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    is_subtest = type(report).__name__ == "SubtestReport"
    if report.failed:
        _record(report.nodeid, "failed", report)
    elif is_subtest:
        return  # a subtest's pass or skip says nothing about the test as a whole
    elif report.skipped:
        _record(report.nodeid, "skipped", report)
    elif report.when == "call":
        _record(report.nodeid, "passed", report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _record(report.nodeid or "<collection>", "failed", report)


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("COMPAT_RESULTS")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"outcomes": _outcomes, "messages": _messages}, f, indent=1, sort_keys=True)
