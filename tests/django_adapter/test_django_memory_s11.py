"""The Django memory backend over a memory bound: a refused write leaves no older value.

Django's contract (``PyMemcacheCache``, and cachekit's memcached backend, which deletes the
key): a ``set`` that fails must not leave the previous value readable. The memory backend
raised ``ValueTooLarge`` but kept answering the old value; ``set_many`` returned the key and
kept it too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache.backends.base import BaseCache

from cachekit.errors import ValueTooLarge
from cachekit_django.cache import MemoryCache

Factory = Callable[..., Callable[..., BaseCache]]
BIG = "x" * 5000


@pytest.fixture
def cache(backend_factory: Factory) -> Any:
    return backend_factory(MemoryCache, "memory-s11")(OPTIONS={"max_memory_bytes": 2000})


def test_refused_set_drops_the_previous_value(cache: Any) -> None:
    cache.set("k", "old")
    with pytest.raises(ValueTooLarge):
        cache.set("k", BIG)
    assert cache.get("k", "absent") == "absent"
    assert not cache.has_key("k")


def test_refused_aset_drops_the_previous_value(cache: Any) -> None:
    cache.set("k", "old")
    with pytest.raises(ValueTooLarge):
        asyncio.run(cache.aset("k", BIG))
    assert cache.get("k") is None


def test_set_many_drops_the_previous_value_of_the_keys_it_returns(cache: Any) -> None:
    cache.set_many({"k": "old", "j": "old"})
    assert cache.set_many({"k": BIG, "j": "new"}) == ["k"]
    assert cache.get_many(["k", "j"]) == {"j": "new"}


def test_refused_replace_drops_the_value_an_add_keeps(cache: Any) -> None:
    cache.set_many({"k": "old", "r": "old"})
    with pytest.raises(ValueTooLarge):
        cache.add("k", BIG)
    with pytest.raises(ValueTooLarge):
        cache.set("r", BIG, xx=True)
    assert cache.get_many(["k", "r"]) == {"k": "old"}
