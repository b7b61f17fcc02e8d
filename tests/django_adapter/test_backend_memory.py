"""The memory backend's Django-specific behaviour, beside ``LocMemCache`` where both apply:
culling (``MAX_ENTRIES``/``CULL_FREQUENCY``), data shared by ``LOCATION``, and which values are
copied."""

from __future__ import annotations

import enum
import pickle
import sys
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache.backends.base import BaseCache, CacheKeyWarning
from django.core.cache.backends.locmem import LocMemCache
from django.utils.safestring import SafeString, mark_safe

from cachekit.errors import ValueTooLarge
from cachekit_django.cache import InvalidCacheConfiguration, MemoryCache
from cachekit_django.shared import close_shared
from cachekit_django.values import TREE_MAX_ITEMS, Pickled, Tree, freeze, isolate, thaw

Factory = Callable[..., Callable[..., BaseCache]]
BACKENDS = [LocMemCache, MemoryCache]


def _count_left(cache: BaseCache, keys: list[str]) -> int:
    return sum(cache.has_key(key) for key in keys)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(("cull_frequency", "left"), [(3, 29), (0, 19), (1, 19), (2, 19), (10, 28)])
def test_culling_leaves_what_locmem_leaves(
    backend_factory: Factory, backend: type[BaseCache], cull_frequency: int, left: int
) -> None:
    options = {"MAX_ENTRIES": 30, "CULL_FREQUENCY": cull_frequency}
    cache = backend_factory(backend, f"cull-{backend.__name__}-{cull_frequency}")(OPTIONS=options)
    cache.clear()
    keys = [f"cull{i}" for i in range(1, 50)]
    for key in keys:
        cache.set(key, "value", 1000)
    assert _count_left(cache, keys) == left
    assert cache.has_key("cull49")  # the newest key is never culled


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda c: c.__name__)
def test_culling_removes_the_least_recently_used_as_locmem_does(
    backend_factory: Factory, backend: type[BaseCache]
) -> None:
    """Found by Django's own tests (``test_lru_get``, ``test_lru_set``, ``test_lru_incr``): a
    cull removed the oldest stored, so a hot key went where LocMemCache keeps it."""
    options = {"MAX_ENTRIES": 9, "CULL_FREQUENCY": 3}
    cache = backend_factory(backend, f"cull-lru-{backend.__name__}")(OPTIONS=options)
    cache.clear()
    for i in range(9):
        cache.set(f"k{i}", i)
    for i in range(3):  # the three oldest, read: now the most recently used
        assert cache.get(f"k{i}") == i
    cache.incr("k3")  # incr is a use too
    cache.set("k9", 9)  # a cull: three go, the least recently used
    assert [cache.has_key(f"k{i}") for i in range(10)] == ([True] * 4 + [False] * 3 + [True] * 3)


def test_set_many_into_a_full_cache_culls_once(backend_factory: Factory) -> None:
    """Review finding: each eviction of a set_many started a cull of its own, so 5 new keys into
    a full cache of 30 left 1 entry (LocMemCache: 25)."""
    options = {"MAX_ENTRIES": 30, "CULL_FREQUENCY": 3}
    cache = backend_factory(MemoryCache, "cull-many")(OPTIONS=options)
    cache.clear()
    cache.set_many({f"old{i}": i for i in range(30)})
    cache.set_many({f"new{i}": i for i in range(5)})
    assert all(cache.has_key(f"new{i}") for i in range(5))
    assert 21 <= cache.get_stats().items <= 25  # LocMemCache: 25 (it culls before the first)


def test_culling_removes_oldest_and_native_bounds_use_the_policy(backend_factory: Factory) -> None:
    culled = backend_factory(MemoryCache, "cull-order")(OPTIONS={"MAX_ENTRIES": 10})
    culled.clear()
    for i in range(11):
        culled.set(f"k{i}", i)
    assert [culled.has_key(f"k{i}") for i in range(11)] == [False] * 3 + [True] * 8
    # With cachekit's own bound the policy evicts one entry at a time (LRU here): no culling.
    native = backend_factory(MemoryCache, "native-bound")(OPTIONS={"max_entries": 10})
    native.clear()
    for i in range(10):
        native.set(f"k{i}", i)
    native.get("k0")  # recently used: survives
    native.set("k10", 10)
    assert native.has_key("k0")
    assert not native.has_key("k1")
    assert native.get_stats().items == 10


def test_default_max_entries_is_djangos() -> None:
    cache = MemoryCache("defaults", {})
    assert cache.cachekit.get_stats().max_entries == 300  # BaseCache's MAX_ENTRIES default


def test_django_and_native_bounds_together_are_refused() -> None:
    cache = MemoryCache("both", {"OPTIONS": {"MAX_ENTRIES": 10, "max_entries": 10}})
    with pytest.raises(InvalidCacheConfiguration, match="MAX_ENTRIES") as info:
        cache.set("k", 1)
    assert info.value.key == "MAX_ENTRIES"


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda c: c.__name__)
def test_backends_with_one_location_share_data(backend: type[BaseCache]) -> None:
    # Django builds a backend per thread: they must see one store (LocMemCache's _caches).
    first, second = backend("shared-name", {}), backend("shared-name", {})
    other = backend("other-name", {})
    first.set("k", "v")
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(backend("shared-name", {}).get("k")))
    thread.start()
    thread.join()
    assert second.get("k") == "v"
    assert seen == ["v"]
    assert other.get("k") is None
    first.clear()


def test_memory_backend_serializer_option_copies_in_the_core(backend_factory: Factory) -> None:
    cache = backend_factory(MemoryCache, "serialized")(OPTIONS={"serializer": "pickle"})
    value = {"a": [1]}
    cache.set("k", value)
    value["a"].append(2)
    got = cache.get("k")
    got["a"].append(3)
    assert cache.get("k") == {"a": [1]}
    assert cache.cachekit.inspect(":1:k").serializer == "pickle"  # stored encoded by the core


def test_freeze_stores_immutables_as_they_are_trees_for_plain_data_and_pickles_the_rest() -> None:
    safe = mark_safe("<b>ok</b>")
    for value in ("s", b"b", 1, 2.5, True, None, safe, (1, "a"), frozenset({1})):
        assert freeze(value) is value
    plain: list[Any] = [
        [1],
        {"a": 1},
        {"row": {"id": 1, "tags": ["a", "b"], "at": (1, "x")}, 2: [[1], {"k": None}], None: safe},
        [],
    ]
    for value in plain:
        stored = freeze(value)
        assert type(stored) is Tree
        assert thaw(stored) == value
        assert thaw(stored) is not value
        assert pickle.loads(pickle.dumps(stored)) == value  # pickles as the plain value
        assert sys.getsizeof(stored) >= sys.getsizeof(value)
    shared = [1]
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    for value in (
        (1, [2]),
        {1},
        bytearray(b"x"),
        {"a": shared, "b": shared},  # a tree would lose the sharing a round trip keeps
        cyclic,
        {"a": {1}},  # a mutable leaf
        {"a": (1, [2])},  # a tuple holding a list
        {frozenset(): [1], "x": bytearray()},
        list(range(TREE_MAX_ITEMS + 1)),
        OrderedDict(a=1),  # subclasses are not trusted
    ):
        stored = freeze(value)
        assert type(stored) is Pickled, value
        assert repr(thaw(stored)) == repr(value)
        assert thaw(stored) is not value
    again = thaw(freeze({"a": shared, "b": shared}))
    assert again["a"] is again["b"]
    assert type(thaw(freeze(safe))) is SafeString
    mutable = {"a": [1]}
    copy = isolate(mutable)
    assert copy == mutable
    assert copy is not mutable
    assert isolate("text") == "text"


def test_close_shared_forgets_the_core() -> None:
    first = MemoryCache("memory://closing", {})
    first.set("k", 1)
    assert close_shared("memory://closing") == 1
    assert close_shared("memory://closing") == 0
    fresh = MemoryCache("memory://closing", {})
    assert fresh.cachekit is not first.cachekit
    assert fresh.get("k") is None


def test_plain_values_read_back_are_independent_copies(backend_factory: Factory) -> None:
    cache = backend_factory(MemoryCache, "trees")()
    value = {"id": 1, "tags": ["a"], "meta": {"seen": [1, 2]}}
    cache.set("k", value)
    value["tags"].append("changed after set")
    got = cache.get("k")
    got["tags"].append("x")
    got["meta"]["seen"].append(3)
    got["id"] = 2
    assert cache.get("k") == {"id": 1, "tags": ["a"], "meta": {"seen": [1, 2]}}
    assert cache.get_many(["k"])["k"] == cache.get("k")
    assert cache.get_or_set("k", None) == cache.get("k")


def test_made_keys_are_remembered_but_checked_as_django_checks_them(
    backend_factory: Factory,
) -> None:
    cache = backend_factory(MemoryCache, "memo")()
    cache.set("k", 1)
    assert cache.get("k") == 1
    assert cache.make_and_validate_key("k") == ":1:k"
    # A key Django warns about warns on every use, not only the first.
    for _ in range(2):
        with pytest.warns(CacheKeyWarning):
            cache.set("bad key", 1)
    # Unhashable and non-str keys are formatted as Django formats them.
    cache.set([7], "list")  # type: ignore[arg-type]
    assert cache.get([7]) == "list"  # type: ignore[arg-type]
    cache.set(1, "int")
    cache.set(True, "bool")
    assert (cache.get(1), cache.get(True)) == ("int", "bool")
    # KEY_PREFIX and VERSION changed at run time take effect.
    cache.version = 2
    assert cache.get("k") is None
    assert cache.make_and_validate_key("k") == ":2:k"
    cache.key_prefix = "p"
    assert cache.make_and_validate_key("k") == "p:2:k"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(5000):  # past the memo's bound: it starts over, keys stay right
            assert cache.make_and_validate_key(f"k{i}") == f"p:2:k{i}"


def test_a_str_subclass_key_never_gets_an_equal_str_keys_entry(backend_factory: Factory) -> None:
    # A str Enum member equals its value and hashes like it, but Django formats it differently.
    class Color(str, enum.Enum):  # noqa: UP042 - formats as "Color.RED"; a StrEnum as "red"
        RED = "red"

    cache = backend_factory(MemoryCache, "str-enum")()
    cache.set("red", "str value")
    cache.set(Color.RED, "enum value")
    assert cache.make_and_validate_key(Color.RED) == LocMemCache("x", {}).make_and_validate_key(
        Color.RED
    )
    assert (cache.get("red"), cache.get(Color.RED)) == ("str value", "enum value")


def test_plain_values_are_charged_what_they_hold(backend_factory: Factory) -> None:
    rows = tuple("x" * 100_000 for _ in range(50))  # 5 MB inside a tuple leaf
    cache = backend_factory(MemoryCache, "tree-size")(OPTIONS={"max_memory_bytes": 1_000_000})
    with pytest.raises(ValueTooLarge):
        cache.set("a", {"rows": rows})
    assert sys.getsizeof(freeze({"rows": rows})) > 5_000_000


def test_a_subclass_may_set_version_before_our_init() -> None:
    class Early(MemoryCache):
        def __init__(self, location: str, params: dict[str, Any]) -> None:
            self.version = 3  # BaseCache's own __init__ sets it again from VERSION
            super().__init__(location, params)

    cache = Early("early", {"VERSION": 2})
    cache.set("k", 1)
    assert cache.make_and_validate_key("k") == ":2:k"
    assert cache.get("k") == 1
