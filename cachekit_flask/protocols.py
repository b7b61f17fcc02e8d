"""Static types of what ``cached`` and ``memoize`` return: the function plus its attributes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

__all__ = ["CachedFunction", "MemoizedFunction"]

P = ParamSpec("P")
R_co = TypeVar("R_co", covariant=True)


class CachedFunction(Protocol[P, R_co]):
    """A ``cached`` function: callable as before, with Flask-Caching's attributes."""

    cache_timeout: Any
    make_cache_key: Callable[..., str]

    @property
    def uncached(self) -> Callable[P, R_co]: ...

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    # A decorated method is bound through the plain function's descriptor.
    def __get__(self, instance: Any, owner: type | None = None, /) -> Any: ...


class MemoizedFunction(CachedFunction[P, R_co], Protocol[P, R_co]):
    """A ``memoize``d function; ``delete_memoized()`` forgets all its results."""

    delete_memoized: Callable[[], None]
