"""Glob patterns with Redis ``KEYS``/``SCAN MATCH`` semantics, for ``delete_pattern``/``scan_keys``.

The same pattern must select the same keys on every provider, so the providers that match keys
themselves use this port of Redis's ``stringmatchlen`` (``src/util.c``), quirks included:

* a key is matched as its UTF-8 bytes: ``?`` and a class take one byte (``?`` does not match
  ``é``, two bytes; ``??`` does);
* ``*`` is any run, ``?`` one byte, ``\\x`` a literal ``x`` (a final ``\\`` is itself);
* ``[abc]``, ``[a-z]`` (reversed ends are swapped), ``[^...]``; inside a class ``\\x`` is a
  literal ``x``, and a range may end in ``]`` or ``\\`` (``[a-]`` is the range ``]``-``a``);
* ``[]`` matches nothing and ``[^]`` any byte;
* a class missing its ``]`` runs to the end of the pattern: ``a[bc`` matches ``ab`` and ``ac``,
  ``a[`` matches nothing.

``fnmatch`` differs (no ``\\`` escape, ``[!...]``, an unclosed ``[`` is a literal), hence this.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from .errors import InvalidKey

__all__ = ["compile_glob", "open_ended"]

_STAR, _QUESTION, _BACKSLASH, _OPEN, _CLOSE, _CARET, _DASH = b"*?\\[]^-"
_ALL_BYTES = frozenset(range(256))


def compile_glob(pattern: str) -> Callable[[str], bool]:
    """A predicate telling whether a key matches ``pattern`` (whole-key match)."""
    if not isinstance(pattern, str) or not pattern:  # before the cache: a list is unhashable
        raise InvalidKey(f"pattern must be a non-empty str, got {pattern!r}")
    fullmatch = _compile(pattern).fullmatch
    return lambda key: fullmatch(key.encode("utf-8", "surrogatepass")) is not None


def open_ended(pattern: str) -> bool:
    """Whether text written after ``pattern`` would change what it matches: a class missing
    its ``]`` would take it in, a final ``\\`` would escape it. A provider that wraps the
    user's pattern (a cluster's ``{key}`` hash tag) cannot then let the server match it."""
    raw = pattern.encode("utf-8", "surrogatepass")
    i, n = 0, len(raw)
    while i < n:
        byte = raw[i]
        i += 1
        if byte == _BACKSLASH:
            if i >= n:
                return True
            i += 1
        elif byte == _OPEN:
            i, closed = _class_end(raw, i)
            if not closed:
                return True
    return False


def _class_end(pattern: bytes, i: int) -> tuple[int, bool]:
    """Where the class whose ``[`` is before ``i`` ends, and whether a ``]`` closed it (the
    same walk as :func:`_character_class`)."""
    n = len(pattern)
    if i < n and pattern[i] == _CARET:
        i += 1
    while True:
        if i + 1 < n and pattern[i] == _BACKSLASH:
            i += 2
        elif i < n and pattern[i] == _CLOSE:
            return i + 1, True
        elif i >= n:
            return i, False
        elif i + 2 < n and pattern[i + 1] == _DASH:
            i += 3
        else:
            i += 1


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[bytes]:
    return re.compile(_translate(pattern.encode("utf-8", "surrogatepass")), re.DOTALL)


def _translate(pattern: bytes) -> bytes:
    # Every element but '*' matches exactly one byte, so the pattern is fixed-length segments
    # between runs of stars. A middle segment may then take its leftmost place for good (an
    # atomic group): a later one is never worse. That bounds the work as Redis's
    # skipLongerMatches does; a plain chain of .* backtracked len(key) ** stars times.
    segments: list[list[bytes]] = [[]]
    i, n = 0, len(pattern)
    after_star = False
    while i < n:
        byte = pattern[i]
        i += 1
        if byte == _STAR:
            if not after_star:  # a run of stars is one
                segments.append([])
            after_star = True
            continue
        after_star = False
        if byte == _QUESTION:
            segments[-1].append(b".")
        elif byte == _OPEN:
            i, fragment = _character_class(pattern, i)
            segments[-1].append(fragment)
        else:
            if byte == _BACKSLASH and i < n:  # a final backslash is itself
                byte = pattern[i]
                i += 1
            segments[-1].append(b"\\x%02x" % byte)
    head, *rest = (b"".join(segment) for segment in segments)
    if not rest:
        return head
    *middle, tail = rest
    return head + b"".join(b"(?>.*?%s)" % segment for segment in middle) + b".*" + tail


def _character_class(pattern: bytes, i: int) -> tuple[int, bytes]:
    """Translate the class whose ``[`` is before ``i``; return where the pattern goes on."""
    n = len(pattern)
    negate = i < n and pattern[i] == _CARET
    if negate:
        i += 1
    members: set[int] = set()
    # The order of the tests is util.c's: an escape, then "]", then the end, then a range.
    while True:
        if i + 1 < n and pattern[i] == _BACKSLASH:
            members.add(pattern[i + 1])
            i += 2
        elif i < n and pattern[i] == _CLOSE:
            i += 1
            break
        elif i >= n:
            break  # unclosed: the class took the rest of the pattern
        elif i + 2 < n and pattern[i + 1] == _DASH:
            # util.c compares C chars, signed on x86-64 (the usual server; unsigned on ARM):
            # a range with one end >= 0x80 spans what the signed order puts between its ends.
            low, high = sorted((_signed(pattern[i]), _signed(pattern[i + 2])))
            members.update(value % 256 for value in range(low, high + 1))
            i += 3
        else:
            members.add(pattern[i])
            i += 1
    if negate:
        members = set(_ALL_BYTES - members)
    return i, _byte_set(members)


def _signed(byte: int) -> int:
    return byte - 256 if byte >= 0x80 else byte


def _byte_set(members: set[int]) -> bytes:
    """A regex matching one byte of ``members`` (nothing if it is empty)."""
    if not members:
        return b"(?!)"
    ordered = sorted(members)
    runs: list[list[int]] = []
    for byte in ordered:
        if runs and runs[-1][1] == byte - 1:
            runs[-1][1] = byte
        else:
            runs.append([byte, byte])
    parts = (
        b"\\x%02x" % low if low == high else b"\\x%02x-\\x%02x" % (low, high) for low, high in runs
    )
    return b"[" + b"".join(parts) + b"]"
