"""Module-level singletons used in signatures.

``MISSING`` marks a miss so that ``None`` can be cached; ``DEFAULT`` marks "use the cache's
``default_ttl``" so that ``None`` can mean "never expire".
"""

from __future__ import annotations

import enum
from typing import Final, Literal

__all__ = ["DEFAULT", "MISSING", "DefaultType", "MissingType"]


class MissingType(enum.Enum):
    """Type of :data:`MISSING`; an enum so that type checkers can narrow on ``is MISSING``."""

    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "cachekit.MISSING"

    def __bool__(self) -> Literal[False]:
        return False


class DefaultType(enum.Enum):
    """Type of :data:`DEFAULT`."""

    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "cachekit.DEFAULT"


MISSING: Final = MissingType.MISSING
DEFAULT: Final = DefaultType.DEFAULT
