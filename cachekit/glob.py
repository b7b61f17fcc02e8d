"""Glob patterns with Redis ``KEYS``/``SCAN MATCH`` semantics, for ``delete_pattern``.

``fnmatch`` differs from Redis (no ``\\`` escape, ``[!...]`` rather than ``[^...]``), and the
same pattern must select the same keys on every provider, so the memory provider matches with
this translation of Redis's ``stringmatchlen`` rules: ``*`` any run, ``?`` one character,
``[abc]``, ``[a-z]``, ``[^abc]`` classes, and ``\\x`` for a literal ``x``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from .errors import InvalidKey

__all__ = ["compile_glob"]


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> Callable[[str], bool]:
    """A predicate telling whether a key matches ``pattern`` (whole-key match)."""
    if not isinstance(pattern, str) or not pattern:
        raise InvalidKey(f"pattern must be a non-empty str, got {pattern!r}")
    regex = re.compile(_translate(pattern), re.DOTALL)
    return lambda key: regex.fullmatch(key) is not None


def _translate(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif char == "[":
            end, body = _character_class(pattern, i)
            out.append(body)
            i = end
        else:
            out.append(re.escape(char))
    return "".join(out)


def _character_class(pattern: str, i: int) -> tuple[int, str]:
    """Translate ``[...]`` starting after the ``[``; an unclosed class matches a literal ``[``."""
    n = len(pattern)
    negate = i < n and pattern[i] == "^"
    j = i + 1 if negate else i
    items: list[str] = []
    while j < n and pattern[j] != "]":
        char = pattern[j]
        if char == "\\" and j + 1 < n:
            items.append(re.escape(pattern[j + 1]))
            j += 2
        elif j + 2 < n and pattern[j + 1] == "-" and pattern[j + 2] != "]":
            low, high = sorted((char, pattern[j + 2]))
            items.append(f"{re.escape(low)}-{re.escape(high)}")
            j += 3
        else:
            items.append(re.escape(char))
            j += 1
    if j >= n:
        return i, re.escape("[")
    if not items:
        return j + 1, "(?!)" if not negate else "."
    return j + 1, ("[^" if negate else "[") + "".join(items) + "]"
