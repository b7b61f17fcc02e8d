"""Review findings in the Django backends' values, keys, timeouts and culling, each checked side
by side with Django's own backend of the same kind (``LocMemCache``, ``RedisCache``,
``PyMemcacheCache``, ``FileBasedCache``): same inputs, same expected outputs. Real servers
throughout (``tests/conftest.py``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import pytest
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.memcached import PyMemcacheCache
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache

from cachekit_django import cache as backends

Factory = Callable[..., Callable[..., BaseCache]]
PREFIX = "django-tests:review-values:"
#: Django's RedisCache empties its whole database on clear(): it gets one of its own.
DJANGO_REDIS_DB = 7

KINDS = [
    "memory",
    pytest.param("redis", marks=pytest.mark.servers),
    pytest.param("memcached", marks=pytest.mark.servers),
    "file",
]


@pytest.fixture
def pair(
    request: pytest.FixtureRequest, backend_factory: Factory, tmp_path: Path
) -> Callable[..., tuple[BaseCache, BaseCache]]:
    """``pair(kind, **params)``: (Django's backend, cachekit's) of ``kind``, built from the same
    ``params`` (``OPTIONS``, ``TIMEOUT``...), both empty. Their keys never meet: a database, a
    ``KEY_PREFIX``, a location of their own."""
    count = [0]

    def make(kind: str, **params: Any) -> tuple[BaseCache, BaseCache]:
        count[0] += 1
        name = f"review-values-{request.node.name}-{count[0]}"
        if kind == "memory":
            django = backend_factory(LocMemCache, name)(**params)
            ours = backend_factory(backends.MemoryCache, name)(**params)
        elif kind == "redis":
            server = request.getfixturevalue("redis_server")
            url = f"redis://{server.host}:{server.port}"
            django = backend_factory(DjangoRedisCache, f"{url}/{DJANGO_REDIS_DB}")(**params)
            options = {**params.get("OPTIONS", {}), "prefix": PREFIX}
            ours = backend_factory(backends.RedisCache, f"{url}/0")(**params, OPTIONS=options)
        elif kind == "memcached":
            location = request.getfixturevalue("memcached_location")
            django = backend_factory(PyMemcacheCache, location)(**params, KEY_PREFIX="rvdj")
            ours = backend_factory(backends.MemcachedCache, location)(**params, KEY_PREFIX="rvck")
        else:
            django = backend_factory(FileBasedCache, str(tmp_path / f"django-{count[0]}"))(**params)
            ours = backend_factory(backends.FileCache, str(tmp_path / f"ours-{count[0]}"))(**params)
        django.clear()
        ours.clear()
        return django, ours

    return make


def _side_by_side(caches: tuple[BaseCache, BaseCache], scenario: Callable[[BaseCache], Any]) -> Any:
    """``scenario`` run on both backends: it must give the same outcome; returns Django's."""
    django, ours = (scenario(cache) for cache in caches)
    assert ours == django, f"cachekit: {ours!r}, Django: {django!r}"
    return django


# -- 1. get_or_set hands the caller's own default back (network and file backends) -------------


def _own_default(cache: BaseCache) -> Any:
    defaults = {"items": []}
    cache.delete("cfg")
    cfg = cache.get_or_set("cfg", defaults)
    first_is_default = cfg is defaults
    cfg["items"].append("x")
    cache.delete("cfg")
    again = cache.get_or_set("cfg", defaults)
    return first_is_default, defaults, again


def _own_computed(cache: BaseCache) -> Any:
    shared = {"items": []}
    cache.delete("cfg")
    cfg = cache.get_or_set("cfg", lambda: shared)
    first_is_shared = cfg is shared
    cfg["items"].append("x")
    return first_is_shared, shared, cache.get("cfg")


def _own_default_async(cache: BaseCache) -> Any:
    async def scenario() -> Any:
        defaults = {"items": []}
        shared = {"rows": [1]}
        await cache.adelete("cfg")
        await cache.adelete("made")
        cfg = await cache.aget_or_set("cfg", defaults)
        made = await cache.aget_or_set("made", lambda: shared)
        outcome = (cfg is defaults, made is shared)
        cfg["items"].append("x")
        made["rows"].append(2)
        return outcome, defaults, shared, await cache.aget("cfg"), await cache.aget("made")

    return asyncio.run(scenario())


@pytest.mark.parametrize("kind", KINDS)
def test_get_or_set_returns_a_copy_not_the_default(pair: Any, kind: str) -> None:
    """Review finding: on Redis, memcached and file backends a miss returned the object passed
    in (or the one the callable made), so changing the result changed the caller's defaults and
    what the next miss stored. Django returns ``get(key, default)``: a copy."""
    caches = pair(kind)
    assert _side_by_side(caches, _own_default) == (False, {"items": []}, {"items": []})
    assert _side_by_side(caches, _own_computed) == (False, {"items": []}, {"items": []})
    assert _side_by_side(caches, _own_default_async) == (
        (False, False),
        {"items": []},
        {"rows": [1]},
        {"items": []},
        {"rows": [1]},
    )


@pytest.mark.parametrize("kind", ["redis", "memcached", "file"])
def test_get_or_set_copy_is_what_a_get_decodes(
    backend_factory: Factory, request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    """The copy a miss returns is the serializer's (as a later ``get``'s), here JSON's: a tuple
    comes back as a list both times; a coroutine function still works in aget_or_set."""
    if kind == "redis":
        location = request.getfixturevalue("redis_location")
        options = {"serializer": "json", "prefix": PREFIX + "json:"}
        cache: Any = backend_factory(backends.RedisCache, location)(OPTIONS=options)
    elif kind == "memcached":
        location = request.getfixturevalue("memcached_location")
        cache = backend_factory(backends.MemcachedCache, location)(
            OPTIONS={"serializer": "json"}, KEY_PREFIX="rvjs"
        )
    else:
        cache = backend_factory(backends.FileCache, str(tmp_path / "json"))(
            OPTIONS={"serializer": "json"}
        )
    cache.clear()
    value = {"pair": (1, 2)}
    first = cache.get_or_set("k", value)
    assert first == {"pair": [1, 2]} == cache.get("k") == cache.get_or_set("k", value)

    async def make() -> dict[str, Any]:
        return value

    async def scenario() -> Any:
        made = await cache.aget_or_set("a", make)
        return made, made is value, await cache.aget("a")

    assert asyncio.run(scenario()) == ({"pair": [1, 2]}, False, {"pair": [1, 2]})


# -- 2. MemoryCache.set checked one snapshot and stored another ----------------------------------


class _Hooked(type):
    """Classes that run :attr:`hook` (once) when hashed and pass for ``int`` in a set lookup:
    a deterministic stand-in for another thread changing a value while ``set`` walks it."""

    hook: ClassVar[Callable[[], None] | None] = None

    def __hash__(cls) -> int:
        hook, _Hooked.hook = _Hooked.hook, None
        if hook is not None:
            hook()
        return hash(int)

    def __eq__(cls, other: object) -> bool:
        return other is int or other is cls


class Sneaky(int, metaclass=_Hooked):
    """An int whose type check (``type(x) in {int, ...}``) runs :attr:`_Hooked.hook`."""


@pytest.fixture
def hook() -> Iterator[Callable[[Callable[[], None]], None]]:
    def arm(action: Callable[[], None]) -> None:
        _Hooked.hook = action

    yield arm
    _Hooked.hook = None


def test_set_stores_the_value_it_checked_not_a_later_leaf(pair: Any, hook: Any) -> None:
    """Review finding: plant() checked the value in one pass and copied it in a second, so a
    leaf another thread replaced with a list in between was stored uncopied: the cache shared
    that list with the writer. LocMemCache pickles one snapshot."""
    live: list[Any] = []

    def scenario(cache: BaseCache) -> Any:
        live.clear()
        value = {"a": 0, "s": Sneaky(1)}
        hook(lambda: value.__setitem__("a", live))  # while set() looks at "s"
        cache.set("k", value)
        live.append("changed after set")
        got = cache.get("k")
        return got, got["a"] is live

    assert _side_by_side(pair("memory"), scenario) == ({"a": 0, "s": 1}, False)


def test_set_stores_the_value_it_checked_not_a_later_container(pair: Any, hook: Any) -> None:
    """Review finding: a list replaced by an int between the two passes made the copy pass call
    ``int.copy()``: set() raised AttributeError."""

    def scenario(cache: BaseCache) -> Any:
        value = {"b": [1, [2]], "s": Sneaky(1)}
        hook(lambda: value.__setitem__("b", 5))  # after "b" was seen to be a list
        cache.set("k", value)
        got = cache.get("k")
        got["b"][1].append(3)
        return got, cache.get("k")

    expected = {"b": [1, [2]], "s": 1}
    assert _side_by_side(pair("memory"), scenario) == ({"b": [1, [2, 3]], "s": 1}, expected)


def test_set_copies_what_it_walks(pair: Any, hook: Any) -> None:
    """A nested container changed while set() walks the value: stored as it was copied, never
    shared with the caller."""
    inner: list[Any] = [1]

    def scenario(cache: BaseCache) -> Any:
        inner[:] = [1]
        value = {"l": inner, "s": Sneaky(1), "d": {"x": [2]}}
        hook(lambda: inner.append("during"))
        cache.set("k", value)
        inner.append("after")
        value["d"]["x"].append("after")
        return cache.get("k")

    got = _side_by_side(pair("memory"), scenario)
    assert got["d"] == {"x": [2]}
    assert got["l"] in ([1], [1, "during"])


# -- 3. make_and_validate_key overridden -------------------------------------------------------


class _Lower:
    def make_and_validate_key(self, key: Any, version: int | None = None) -> str:
        return super().make_and_validate_key(key.lower(), version)  # type: ignore[misc]


class LowerLocMemCache(_Lower, LocMemCache):
    pass


class LowerMemoryCache(_Lower, backends.MemoryCache):
    pass


class LowerFileBasedCache(_Lower, FileBasedCache):
    pass


class LowerFileCache(_Lower, backends.FileCache):
    pass


def _lowered(cache: BaseCache) -> Any:
    cache.set("ABC", 1)
    cache.set_many({"DEF": 2})
    return (
        cache.get("abc"),
        cache.get("ABC"),
        cache.get_many(["ABC", "def"]),
        cache.has_key("ABC"),
        asyncio.run(cache.aget("Abc")),
    )


def test_make_and_validate_key_of_a_subclass_is_used(
    backend_factory: Factory, tmp_path: Path
) -> None:
    """Review finding: get() and set() inlined the default key path unless key_func, make_key
    or validate_key were replaced, so a subclass's make_and_validate_key was skipped there
    (get_many, has_key and the async methods used it)."""
    memory = (
        backend_factory(LowerLocMemCache, "review-lower")(),
        backend_factory(LowerMemoryCache, "review-lower")(),
    )
    assert _side_by_side(memory, _lowered) == (1, 1, {"ABC": 1, "def": 2}, True, 1)
    files = (
        backend_factory(LowerFileBasedCache, str(tmp_path / "django"))(),
        backend_factory(LowerFileCache, str(tmp_path / "ours"))(),
    )
    assert _side_by_side(files, _lowered) == (1, 1, {"ABC": 1, "def": 2}, True, 1)


def test_make_and_validate_key_patched_on_an_instance_is_used(pair: Any) -> None:
    def scenario(cache: BaseCache) -> Any:
        cache.get("warm")  # the fast path's memo holds the key's made form
        original = cache.make_and_validate_key

        def lowered(key: Any, version: int | None = None) -> str:
            return original(key.lower(), version)

        with mock.patch.object(cache, "make_and_validate_key", lowered):
            cache.set("WARM", 1)
            inside = (cache.get("warm"), cache.get("Warm"))
        return inside, cache.get("WARM"), cache.get("warm")

    assert _side_by_side(pair("memory"), scenario) == ((1, 1), None, 1)


# -- 4. culling a set_many ----------------------------------------------------------------------


def _left(cache: BaseCache, keys: str) -> str:
    return "".join(key for key in keys if cache.has_key(key))


@pytest.mark.parametrize(
    ("cull_frequency", "batch", "left"),
    [
        (3, {"g": 1, "h": 2}, "cdefgh"),
        (3, {"g": 1, "a": 2}, "acdefg"),
        (3, {"g": 1, "h": 2, "i": 3, "j": 4, "k": 5}, "ghijk"),
        (2, {"g": 1, "h": 2, "i": 3}, "defghi"),
        (0, {"g": 1, "h": 2}, "gh"),
    ],
)
def test_set_many_culls_as_locmem_does(
    pair: Any, cull_frequency: int, batch: dict[str, int], left: str
) -> None:
    """Review finding: the cull after a set_many aimed at one count for the whole batch, so
    a batch of new keys into a full cache left one entry fewer than LocMemCache (which culls at
    the first new key, then keeps filling up to MAX_ENTRIES)."""
    options = {"MAX_ENTRIES": 6, "CULL_FREQUENCY": cull_frequency}

    def scenario(cache: BaseCache) -> str:
        for key in "abcdef":
            cache.set(key, 0)
        cache.set_many(batch)
        return _left(cache, "abcdefghijk")

    assert _side_by_side(pair("memory", OPTIONS=options), scenario) == left

    def scenario_async(cache: BaseCache) -> str:
        async def run() -> None:
            for key in "abcdef":
                await cache.aset(key, 0)
            await cache.aset_many(batch)

        cache.clear()
        asyncio.run(run())
        return _left(cache, "abcdefghijk")

    assert _side_by_side(pair("memory", OPTIONS=options), scenario_async) == left


# -- 5. get_many of keys whose made keys collide --------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_get_many_answers_every_key_asked(pair: Any, kind: str) -> None:
    """Review finding: get_many([1, "1"]) merged the two (both are made ':1:1') and answered
    one of them; LocMemCache and FileBasedCache answer each key asked, each its own copy."""

    def scenario(cache: BaseCache) -> Any:
        cache.set("1", "one")
        cache.set("2", ["two"])
        found = cache.get_many([1, "1", 2, "2", "3"])
        separate = found[2] is not found["2"]
        found[2].append("changed")
        found_async = asyncio.run(cache.aget_many([1, "1"]))
        return found, separate, found_async, cache.get(2)

    assert _side_by_side(pair(kind), scenario) == (
        {1: "one", "1": "one", 2: ["two", "changed"], "2": ["two"]},
        True,
        {1: "one", "1": "one"},
        ["two"],
    )


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("redis", marks=pytest.mark.servers),
        pytest.param("memcached", marks=pytest.mark.servers),
    ],
)
def test_get_many_answers_every_key_asked_on_network_backends(pair: Any, kind: str) -> None:
    """Django's RedisCache and PyMemcacheCache merge such keys; cachekit's answer as
    LocMemCache does, on every backend."""
    _, cache = pair(kind)
    cache.set("1", {"n": 1})
    found = cache.get_many([1, "1"])
    assert found == {1: {"n": 1}, "1": {"n": 1}}
    assert found[1] is not found["1"]
    assert asyncio.run(cache.aget_many(["1", 1])) == {1: {"n": 1}, "1": {"n": 1}}


# -- 6. a bool timeout ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_bool_timeout_is_taken_as_seconds(pair: Any, kind: str) -> None:
    """Review finding: a bool timeout raised (InvalidArgumentType/TypeError) on every cachekit
    backend; Django's four take it as an int: True lives 1 s, False is not stored."""

    def scenario(cache: BaseCache) -> Any:
        cache.set("s-true", "v", True)
        cache.set("s-false", "v", False)
        cache.set("t-true", "v")
        cache.set("t-false", "v")
        added = (cache.add("a-true", "v", True), cache.add("a-false", "v", False))
        failed = cache.set_many({"m-true": "v"}, True) + cache.set_many({"m-false": "v"}, False)
        got = (cache.get_or_set("g-true", "v", True), cache.get_or_set("g-false", "v", False))
        touched = (cache.touch("t-true", True), cache.touch("t-false", False))

        async def twins() -> Any:
            await cache.aset("as-true", "v", True)
            await cache.aset("as-false", "v", False)
            await cache.aset("at-true", "v")
            return (
                await cache.aadd("aa-true", "v", True),
                await cache.aadd("aa-false", "v", False),
                await cache.aset_many({"am-true": "v"}, True),
                await cache.aset_many({"am-false": "v"}, False),
                await cache.aget_or_set("ag-true", "v", True),
                await cache.atouch("at-true", True),
            )

        async_results = asyncio.run(twins())
        names = [f"{op}-{flag}" for op in ("s", "t", "a", "m", "g") for flag in ("true", "false")]
        names += ["as-true", "as-false", "aa-true", "aa-false", "am-true", "am-false"]
        names += ["ag-true", "at-true"]
        present = [name for name in names if cache.has_key(name)]
        time.sleep(2.1 if kind == "memcached" else 1.2)  # memcached counts whole seconds
        still = [name for name in names if cache.has_key(name)]
        return added, failed, got, touched, async_results, present, still

    added, failed, got, touched, async_results, present, still = _side_by_side(pair(kind), scenario)
    assert (added, failed, got, touched) == ((True, True), [], ("v", "v"), (True, True))
    assert async_results == (True, True, [], [], "v", True)
    trues = [name for name in present if name.endswith("-true")]
    assert present == trues
    assert trues == [
        *("s-true", "t-true", "a-true", "m-true", "g-true"),
        *("as-true", "aa-true", "am-true", "ag-true", "at-true"),
    ]
    assert still == []


@pytest.mark.parametrize(
    "kind", ["memory", pytest.param("tiered", marks=pytest.mark.servers), "redis", "file"]
)
def test_aget_or_set_awaits_a_coroutine_function(
    backend_factory: Factory, request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    """Found beside finding 1: the memory and tiered backends stored a coroutine function's
    coroutine (a pickle error); the others awaited it, as the core does."""
    if kind == "memory":
        cache: Any = backend_factory(backends.MemoryCache, "review-values-coroutine")()
    elif kind == "tiered":
        cache = backend_factory(backends.TieredCache, request.getfixturevalue("tiered_location"))()
    elif kind == "redis":
        location = request.getfixturevalue("redis_location")
        cache = backend_factory(backends.RedisCache, location)(OPTIONS={"prefix": PREFIX})
    else:
        cache = backend_factory(backends.FileCache, str(tmp_path / "coroutine"))()
    cache.clear()
    value = {"rows": [1]}

    async def make() -> dict[str, Any]:
        return value

    async def scenario() -> Any:
        made = await cache.aget_or_set("k", make)
        made["rows"].append(2)
        return made, await cache.aget("k"), await cache.aget_or_set("k", make)

    assert asyncio.run(scenario()) == ({"rows": [1, 2]}, {"rows": [1]}, {"rows": [1]})
    assert value == {"rows": [1]}


def test_get_or_set_on_null_hands_back_the_callers_object_as_dummycache() -> None:
    """null:// stores nothing: get_or_set pickled the default to copy it (a lock raised
    TypeError) where Django's DummyCache returns the caller's own object."""
    from django.core.cache.backends.dummy import DummyCache

    from cachekit_django.cache import CacheKitCache

    ours = CacheKitCache("null://", {})
    theirs = DummyCache("", {})
    lock = threading.Lock()
    for cache in (ours, theirs):
        assert cache.get_or_set("k", lock) is lock
        assert cache.get_or_set("k", lambda: lock) is lock
        assert asyncio.run(cache.aget_or_set("k", lock)) is lock
