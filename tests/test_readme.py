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
