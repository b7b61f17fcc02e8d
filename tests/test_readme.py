"""The README's quick start runs as written (the first code a new user copies)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"


def _quick_start() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Quick start") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "the README's quick start has no python block"
    return match.group(1)


def test_quick_start_runs() -> None:
    # The two names the block leaves to the reader: a report builder and a product.
    namespace: dict[str, Any] = {"build_report": lambda: {"rows": 3}, "product": {"id": 7}}
    exec(compile(_quick_start(), str(README), "exec"), namespace)
    cache = namespace["cache"]
    assert cache.get("user:1") == {"name": "Ada L."}  # the replace in the block took effect
    assert cache.get("report:today") == {"rows": 3}
    assert cache.get("product:7") is None  # its tag was invalidated


def _section(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end >= 0 else None]


def test_set_up_names_the_extra_that_redis_needs() -> None:
    """The set-up said ``CACHEKIT_URL=redis://...`` runs the site on Redis next to a command
    installing only '.[django,metrics]': on a fresh machine it failed with E001 (no redis-py)."""
    section = _section("## Set up on a fresh machine")
    assert "CACHEKIT_URL=redis://" in section
    extras = re.findall(r"pip install -e '\.\[([a-z,]+)\]'", section)
    assert any("redis" in group.split(",") for group in extras), extras
