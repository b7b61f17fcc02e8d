"""The ``cachekit`` command line: the README's first set-up command runs this."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cachekit.__main__ import main


def test_demo_prints_a_stats_row_per_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--requests", "2000", "--pages", "300", "--max-entries", "50"]) == 0
    out = capsys.readouterr().out
    rows = [
        line.split()
        for line in out.splitlines()
        if line.split()[:1] in (["lru"], ["lfu"], ["ttl"], ["adaptive"])
    ]
    assert [row[0] for row in rows] == ["lru", "lfu", "ttl", "adaptive"]
    for row in rows:
        assert int(row[1]) == 2000  # every page view is one counted lookup
        assert 0 < float(row[2].rstrip("%")) < 100
        assert int(row[3]) == 50  # the cache is full and bounded
    assert "hit_ratio" in out


def test_demo_single_policy(capsys: pytest.CaptureFixture[str]) -> None:
    main(["demo", "--requests", "400", "--policy", "lfu", "--threads", "2"])
    out = capsys.readouterr().out
    assert "demo-lfu" in out
    assert "\nlru " not in out


def test_help_and_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "demo" in capsys.readouterr().out
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_python_dash_m() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cachekit", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: cachekit" in result.stdout


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--pages", "0"),
        ("--max-entries", "0"),
        ("--threads", "0"),
        ("--threads", "-1"),
        ("--requests", "0"),
        ("--pages", "x"),
    ],
)
def test_demo_refuses_counts_below_one(
    capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    """--pages 0 raised IndexError, --max-entries 0 a ConfigurationError traceback, --threads -1
    hung on its Barrier and --threads 0 ran nothing: now argparse refuses them (exit 2)."""
    with pytest.raises(SystemExit) as exited:
        main(["demo", option, value, "--policy", "lru", "--requests", "100"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}:" in err
    assert "Traceback" not in err
