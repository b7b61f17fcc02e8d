"""Paging through a cache's keys: argument checks and the sorted-cursor fallback.

Redis pages with its own ``SCAN`` cursor. Providers without one page over a sorted snapshot,
the cursor being the last key returned: stable while keys come and go (a key added behind the
cursor is simply not seen), at an O(n log n) cost per page that tools, not hot paths, pay.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import InvalidArgument, InvalidKey

__all__ = ["MAX_PAGE", "check_scan_args", "sorted_page"]

#: The largest page a caller may ask for: listing stays bounded even when asked not to be.
MAX_PAGE = 10_000


def check_scan_args(pattern: object, cursor: object, count: object) -> None:
    if not isinstance(pattern, str) or not pattern:
        raise InvalidKey(f"pattern must be a non-empty str, got {pattern!r}")
    if not isinstance(cursor, str):
        raise InvalidArgument(f'cursor must be a str ("" to start), got {cursor!r}')
    if type(count) is not int or not 1 <= count <= MAX_PAGE:
        raise InvalidArgument(f"count must be an int from 1 to {MAX_PAGE}, got {count!r}")


def sorted_page(keys: Iterable[str], cursor: str, count: int) -> tuple[str, list[str]]:
    """The ``count`` smallest keys after ``cursor``, and the next cursor (``""`` at the end)."""
    ordered = sorted(k for k in keys if k > cursor) if cursor else sorted(keys)
    page = ordered[:count]
    return (page[-1] if len(ordered) > count else ""), page
