"""The cache behaviour contract, written once and run over every provider and adapter.

A provider's test module subclasses :class:`CacheContract` (or
:class:`DistributedCacheContract`) and supplies two fixtures::

    class TestMyCache(CacheContract):
        @pytest.fixture
        def make_cache(self, clock):           # returns a factory of fresh, empty caches
            return lambda **options: MyCache(clock=clock, **options)

        @pytest.fixture
        def advance(self, clock):              # moves the provider's notion of time forward
            return clock.advance

``make_cache(**options)`` must accept at least ``default_ttl``. Providers whose time cannot be
faked (network servers) implement ``advance`` by waiting; keep their TTLs short via
:attr:`CacheContract.ttl_unit`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, ClassVar

import pytest

from ..errors import InvalidArgument, InvalidKey, NotAnInteger, UnsupportedOperation
from ..interfaces import Cache, DistributedCache
from ..sentinels import DEFAULT, MISSING
from .clock import FakeClock

__all__ = ["CacheContract", "DistributedCacheContract", "MakeCache"]

MakeCache = Callable[..., Cache]

#: Values every provider must round-trip exactly (by equality and type).
ROUND_TRIP_VALUES: list[Any] = [
    "text",
    "ünïcødé ✓",
    "",
    0,
    -17,
    2**62,
    3.5,
    True,
    False,
    None,
    b"\x00\xffbytes",
    [1, "two", 3.0, None],
    {"nested": {"list": [1, 2], "flag": True}},
]

BAD_KEYS: list[Any] = ["", None, 42, b"bytes", ("tuple",)]


def _race_get_or_set(
    cache: Cache, key: str, produce: Callable[[], Any], threads: int, ttl: Any = DEFAULT
) -> tuple[list[int], list[Any]]:
    """``threads`` threads miss ``key`` at once and call ``get_or_set``; returns the factory's
    calls and each thread's result. The first factory call is held for up to 0.3 s, long enough
    for every other thread to have missed and either waited (single-flight) or run the factory
    too (which ends the hold at once); no private state is inspected."""
    release = threading.Event()
    entered = threading.Barrier(threads + 1)
    calls: list[int] = []
    results: list[Any] = []

    def factory() -> Any:
        calls.append(1)
        release.wait(10)
        return produce()

    def work() -> None:
        cache.get("warm-up")  # this thread's connection (a TLS handshake) is made before
        entered.wait()
        results.append(cache.get_or_set(key, factory, ttl))

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    entered.wait()
    pause = threading.Event()
    for _ in range(300):
        if len(calls) > 1:
            break
        pause.wait(0.001)
    release.set()
    for t in pool:
        t.join()
    return calls, results


class CacheContract:
    """Behaviour every :class:`~cachekit.Cache` provider must show."""

    #: Seconds that count as "a TTL" in these tests; network providers may need a larger unit.
    ttl_unit: float = 10.0
    #: Whether ``scan_keys`` lists keys (memcached cannot: it raises UnsupportedOperation).
    lists_keys: bool = True
    #: Whether ``replace`` stores over present keys (else it must raise UnsupportedOperation).
    replaces: bool = True

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def make_cache(self) -> MakeCache:  # pragma: no cover - always overridden
        raise NotImplementedError("a provider's test class supplies make_cache")

    @pytest.fixture
    def advance(self) -> Callable[[float], None]:  # pragma: no cover - always overridden
        raise NotImplementedError("a provider's test class supplies advance")

    @pytest.fixture
    def cache(self, make_cache: MakeCache) -> Iterator[Cache]:
        cache = make_cache()
        yield cache
        cache.clear()
        cache.close()

    # -- get / set -------------------------------------------------------------------------

    def test_missing_key_returns_default(self, cache: Cache) -> None:
        assert cache.get("absent") is None
        assert cache.get("absent", "fallback") == "fallback"
        assert cache.get("absent", MISSING) is MISSING

    @pytest.mark.parametrize("value", ROUND_TRIP_VALUES, ids=repr)
    def test_round_trip(self, cache: Cache, value: Any) -> None:
        cache.set("k", value)
        got = cache.get("k", MISSING)
        assert got == value
        assert type(got) is type(value)

    def test_none_is_cacheable(self, cache: Cache) -> None:
        cache.set("none", None)
        assert cache.get("none", MISSING) is None
        assert cache.exists("none")

    def test_overwrite(self, cache: Cache) -> None:
        cache.set("k", 1)
        cache.set("k", 2)
        assert cache.get("k") == 2

    def test_keys_are_distinct(self, cache: Cache) -> None:
        cache.set("a", 1)
        cache.set("A", 2)
        cache.set("a ", 3)
        assert [cache.get("a"), cache.get("A"), cache.get("a ")] == [1, 2, 3]

    @pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
    def test_invalid_keys_are_rejected(self, cache: Cache, key: Any) -> None:
        for call in (
            lambda: cache.get(key),
            lambda: cache.set(key, 1),
            lambda: cache.add(key, 1),
            lambda: cache.delete(key),
            lambda: cache.exists(key),
            lambda: cache.touch(key),
            lambda: cache.ttl(key),
            lambda: cache.incr(key),
            lambda: cache.get_many([key]),
            lambda: cache.set_many({key: 1}),
            lambda: cache.delete_many([key]),
        ):
            with pytest.raises(InvalidKey):
                call()

    # -- add / delete / exists / clear ---------------------------------------------------------

    def test_add_only_when_absent(self, cache: Cache) -> None:
        assert cache.add("k", 1) is True
        assert cache.add("k", 2) is False
        assert cache.get("k") == 1

    def test_add_after_expiry(self, cache: Cache, advance: Callable[[float], None]) -> None:
        assert cache.add("k", 1, ttl=self.ttl_unit)
        advance(self.ttl_unit * 1.5)
        assert cache.add("k", 2) is True
        assert cache.get("k") == 2

    def test_replace_only_when_present(self, cache: Cache) -> None:
        if not self.replaces:
            with pytest.raises(UnsupportedOperation):
                cache.replace("k", 1)
            return
        assert cache.replace("k", 1) is False
        assert not cache.exists("k")
        cache.set("k", 1)
        assert cache.replace("k", 2) is True
        assert cache.get("k") == 2
        assert cache.replace("k", 3, ttl=self.ttl_unit) is True
        assert 0 < (cache.ttl("k") or 0) <= self.ttl_unit
        assert cache.replace("k", 4, ttl=None) is True
        assert cache.ttl("k") is None
        # A non-positive TTL replaces with nothing: the key goes.
        assert cache.replace("k", 5, ttl=0) is True
        assert not cache.exists("k")
        assert cache.replace("k", 5, ttl=0) is False

    def test_replace_after_expiry(self, cache: Cache, advance: Callable[[float], None]) -> None:
        if not self.replaces:
            pytest.skip("this provider has no replace (test_replace_only_when_present checks)")
        cache.set("k", 1, ttl=self.ttl_unit)
        advance(self.ttl_unit * 1.5)
        assert cache.replace("k", 2) is False
        assert cache.get("k") is None

    def test_delete(self, cache: Cache) -> None:
        cache.set("k", 1)
        assert cache.delete("k") is True
        assert cache.delete("k") is False
        assert cache.get("k") is None

    def test_exists(self, cache: Cache) -> None:
        assert not cache.exists("k")
        cache.set("k", 0)
        assert cache.exists("k")
        assert "k" in cache
        cache.delete("k")
        assert not cache.exists("k")

    def test_clear(self, cache: Cache) -> None:
        cache.set_many({"a": 1, "b": 2})
        cache.clear()
        assert cache.get_many(["a", "b"]) == {}

    def test_close_then_reuse(self, cache: Cache) -> None:
        cache.set("k", 1)
        cache.close()
        cache.set("k2", 2)
        assert cache.get("k2") == 2

    # -- TTL semantics -------------------------------------------------------------------------

    def test_default_ttl_applies(
        self, make_cache: MakeCache, advance: Callable[[float], None]
    ) -> None:
        cache = make_cache(default_ttl=self.ttl_unit)
        cache.set("k", 1)
        remaining = cache.ttl("k")
        assert remaining is not None
        assert 0 < remaining <= self.ttl_unit
        advance(self.ttl_unit * 0.5)
        assert cache.get("k") == 1
        advance(self.ttl_unit)
        assert cache.get("k", MISSING) is MISSING

    def test_none_ttl_never_expires(
        self, make_cache: MakeCache, advance: Callable[[float], None]
    ) -> None:
        cache = make_cache(default_ttl=self.ttl_unit)
        cache.set("k", 1, ttl=None)
        advance(self.ttl_unit * 2)
        assert cache.get("k") == 1
        assert cache.ttl("k") is None

    @pytest.mark.parametrize("ttl", [0, -1, -0.5, timedelta(seconds=-3)], ids=repr)
    def test_non_positive_ttl_does_not_store(self, cache: Cache, ttl: Any) -> None:
        cache.set("k", "old")
        cache.set("k", "new", ttl=ttl)
        assert cache.get("k", MISSING) is MISSING
        cache.set_many({"a": 1}, ttl=ttl)
        assert cache.get("a", MISSING) is MISSING

    def test_add_with_non_positive_ttl_reports_absence_without_storing(self, cache: Cache) -> None:
        assert cache.add("k", 1, ttl=0) is True
        assert cache.get("k", MISSING) is MISSING
        cache.set("present", 1)
        assert cache.add("present", 2, ttl=0) is False
        assert cache.get("present") == 1

    @pytest.mark.parametrize("kind", ["int", "float", "timedelta"])
    def test_ttl_types(self, cache: Cache, advance: Callable[[float], None], kind: str) -> None:
        unit = self.ttl_unit
        ttl: Any = {"int": int(unit), "float": unit + 0.5, "timedelta": timedelta(seconds=unit)}[
            kind
        ]
        cache.set("k", 1, ttl=ttl)
        remaining = cache.ttl("k")
        assert remaining is not None
        assert 0 < remaining <= unit + 0.5
        advance(unit + 1)
        assert cache.get("k", MISSING) is MISSING

    @pytest.mark.parametrize("ttl", ["10", [10], object()], ids=repr)
    def test_bad_ttl_type_is_rejected(self, cache: Cache, ttl: Any) -> None:
        with pytest.raises(TypeError):
            cache.set("k", 1, ttl=ttl)

    def test_ttl_of_missing_and_persistent_keys(self, cache: Cache) -> None:
        assert cache.ttl("absent") == 0.0
        cache.set("forever", 1, ttl=None)
        assert cache.ttl("forever") is None

    def test_ttl_counts_down(self, cache: Cache, advance: Callable[[float], None]) -> None:
        cache.set("k", 1, ttl=self.ttl_unit * 3)
        first = cache.ttl("k")
        advance(self.ttl_unit)
        second = cache.ttl("k")
        assert first is not None
        assert second is not None
        assert second < first

    def test_touch(self, cache: Cache, advance: Callable[[float], None]) -> None:
        assert cache.touch("absent", ttl=self.ttl_unit) is False
        cache.set("k", 1, ttl=self.ttl_unit)
        advance(self.ttl_unit * 0.5)
        assert cache.touch("k", ttl=self.ttl_unit * 3) is True
        advance(self.ttl_unit * 2)
        assert cache.get("k") == 1
        assert cache.touch("k", ttl=None) is True
        assert cache.ttl("k") is None
        assert cache.touch("k", ttl=0) is True
        assert cache.get("k", MISSING) is MISSING

    def test_expired_entries_are_gone_everywhere(
        self, cache: Cache, advance: Callable[[float], None]
    ) -> None:
        cache.set("k", 1, ttl=self.ttl_unit)
        advance(self.ttl_unit * 1.5)
        assert not cache.exists("k")
        assert cache.get_many(["k"]) == {}
        assert cache.touch("k") is False
        assert cache.ttl("k") == 0.0
        assert cache.delete("k") is False

    # -- counters -----------------------------------------------------------------------------

    def test_incr_decr(self, cache: Cache) -> None:
        assert cache.incr("n") == 1
        assert cache.incr("n", 10) == 11
        assert cache.decr("n") == 10
        assert cache.decr("n", 15) == -5
        assert cache.get("n") == -5
        assert type(cache.get("n")) is int

    def test_incr_of_a_set_integer(self, cache: Cache) -> None:
        cache.set("n", 41)
        assert cache.incr("n") == 42
        assert cache.get("n") == 42

    def test_incr_keeps_ttl(self, cache: Cache, advance: Callable[[float], None]) -> None:
        cache.set("n", 1, ttl=self.ttl_unit)
        advance(self.ttl_unit * 0.6)
        assert cache.incr("n") == 2
        advance(self.ttl_unit * 0.6)  # past the original expiry: a reset TTL would keep it
        assert cache.get("n", MISSING) is MISSING

    @pytest.mark.parametrize("value", ["1", 1.5, True, [1], None], ids=repr)
    def test_incr_of_a_non_integer(self, cache: Cache, value: Any) -> None:
        cache.set("k", value)
        with pytest.raises(NotAnInteger):
            cache.incr("k")
        assert cache.get("k") == value

    def test_incr_is_atomic_across_threads(self, cache: Cache) -> None:
        threads, per_thread = 8, 200
        start = threading.Barrier(threads)

        def work() -> None:
            start.wait()
            for _ in range(per_thread):
                cache.incr("n")

        pool = [threading.Thread(target=work) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        assert cache.get("n") == threads * per_thread

    # -- many ---------------------------------------------------------------------------------

    def test_get_many(self, cache: Cache) -> None:
        cache.set_many({"a": 1, "b": None, "c": 3})
        assert cache.get_many(["a", "b", "x"]) == {"a": 1, "b": None}
        assert cache.get_many([]) == {}

    def test_set_many_returns_failed_keys(self, cache: Cache) -> None:
        assert cache.set_many({"a": 1, "b": 2}) == []
        assert cache.get_many(["a", "b"]) == {"a": 1, "b": 2}

    def test_set_many_with_ttl(self, cache: Cache, advance: Callable[[float], None]) -> None:
        cache.set_many({"a": 1, "b": 2}, ttl=self.ttl_unit)
        advance(self.ttl_unit * 1.5)
        assert cache.get_many(["a", "b"]) == {}

    def test_delete_many_counts_present_keys(self, cache: Cache) -> None:
        cache.set_many({"a": 1, "b": 2})
        assert cache.delete_many(["a", "b", "c"]) == 2
        assert cache.delete_many([]) == 0

    # -- get_or_set --------------------------------------------------------------------------------

    def test_get_or_set_value(self, cache: Cache) -> None:
        assert cache.get_or_set("k", 1) == 1
        assert cache.get_or_set("k", 2) == 1

    def test_get_or_set_factory_runs_only_on_miss(self, cache: Cache) -> None:
        calls: list[int] = []

        def factory() -> int:
            calls.append(1)
            return 7

        assert cache.get_or_set("k", factory) == 7
        assert cache.get_or_set("k", factory) == 7
        assert calls == [1]

    def test_get_or_set_caches_none(self, cache: Cache) -> None:
        calls: list[int] = []

        def factory() -> None:
            calls.append(1)

        assert cache.get_or_set("k", factory) is None
        assert cache.get_or_set("k", factory) is None
        assert calls == [1]

    def test_get_or_set_with_ttl(self, cache: Cache, advance: Callable[[float], None]) -> None:
        cache.get_or_set("k", lambda: 1, ttl=self.ttl_unit)
        advance(self.ttl_unit * 1.5)
        assert cache.get_or_set("k", lambda: 2) == 2

    def test_get_or_set_is_single_flight(self, cache: Cache) -> None:
        calls, results = _race_get_or_set(cache, "hot", lambda: "computed", 8)
        assert calls == [1]
        assert results == ["computed"] * 8

    def test_get_or_set_factory_error_propagates_and_stores_nothing(self, cache: Cache) -> None:
        def factory() -> int:
            raise LookupError("boom")

        with pytest.raises(LookupError):
            cache.get_or_set("k", factory)
        assert not cache.exists("k")

    # -- stats --------------------------------------------------------------------------------

    def test_stats_count_operations(self, cache: Cache) -> None:
        before = cache.get_stats()
        cache.set("a", 1)
        cache.get("a")
        cache.get("a")
        cache.get("missing")
        cache.delete("a")
        stats = cache.get_stats()
        assert stats.hits - before.hits == 2
        assert stats.misses - before.misses == 1
        assert stats.sets - before.sets == 1
        assert stats.deletes - before.deletes == 1
        assert stats.hit_ratio == pytest.approx(stats.hits / (stats.hits + stats.misses))
        assert stats.uptime >= 0
        assert stats.provider == cache.provider_name

    def test_stats_count_no_set_for_a_counter_step(self, cache: Cache) -> None:
        # One meaning of ``sets`` on every provider: values stored by set/add/set_many...; an
        # incr/decr is none (the memory provider counted one, no other did).
        cache.set("n", 1)
        before = cache.get_stats()
        cache.incr("n")
        cache.decr("n", 2)
        cache.incr("fresh")
        after = cache.get_stats()
        assert after.sets == before.sets
        assert (after.hits, after.misses) == (before.hits, before.misses)

    def test_stats_items(self, cache: Cache) -> None:
        cache.set_many({f"k{i}": i for i in range(5)})
        assert cache.get_stats().items == 5

    # -- async twins --------------------------------------------------------------------------

    def test_async_twins(self, cache: Cache) -> None:
        async def scenario() -> None:
            assert await cache.aget("k") is None
            await cache.aset("k", 1)
            assert await cache.aget("k") == 1
            assert await cache.aadd("k", 2) is False
            if self.replaces:
                assert await cache.areplace("k", 1) is True
                assert await cache.areplace("absent", 1) is False
            assert await cache.aexists("k")
            assert await cache.atouch("k", ttl=None)
            assert await cache.attl("k") is None
            assert await cache.aincr("n", 5) == 5
            assert await cache.adecr("n", 2) == 3
            assert await cache.aset_many({"a": 1, "b": 2}) == []
            assert await cache.aget_many(["a", "b", "z"]) == {"a": 1, "b": 2}
            assert await cache.adelete_many(["a", "b"]) == 2
            assert await cache.adelete("k") is True
            assert (await cache.aget_stats()).sets >= 1
            await cache.aclear()
            assert await cache.aget("n") is None
            await cache.aclose()

        asyncio.run(scenario())

    def test_async_get_or_set_accepts_coroutine_factories_and_is_single_flight(
        self, cache: Cache
    ) -> None:
        calls: list[int] = []

        async def factory() -> str:
            calls.append(1)
            await asyncio.sleep(0)
            return "v"

        async def scenario() -> list[Any]:
            return list(await asyncio.gather(*(cache.aget_or_set("k", factory) for _ in range(5))))

        assert asyncio.run(scenario()) == ["v"] * 5
        assert calls == [1]
        assert asyncio.run(cache.aget_or_set("k2", lambda: 3)) == 3
        assert asyncio.run(cache.aget_or_set("k3", 4)) == 4

    def test_get_or_set_reentrant_same_key_does_not_wait_for_itself(self, cache: Cache) -> None:
        """Review finding: a factory asking for its own key (a cached view calling another with
        the same key) waited for itself forever; it now computes the nested call itself."""
        results: list[Any] = []

        def outer() -> str:
            return str(cache.get_or_set("loop", lambda: "inner")) + "?"  # inner is stored first

        worker = threading.Thread(
            target=lambda: results.append(cache.get_or_set("loop", outer)), daemon=True
        )
        worker.start()
        worker.join(8)  # below every provider's stampede_timeout (10 s)
        assert not worker.is_alive(), "get_or_set waited for itself"
        assert results == ["inner"]  # the outer add lost to the stored inner value

        async def anested() -> Any:
            async def aouter() -> str:
                return str(await cache.aget_or_set("aloop", lambda: "inner")) + "?"

            return await asyncio.wait_for(cache.aget_or_set("aloop", aouter), 8)

        assert asyncio.run(anested()) == "inner"

    def test_get_or_set_is_single_flight_when_nothing_is_stored(self, cache: Cache) -> None:
        """Review finding: with nothing stored (a TTL of 0; a backend down and failing open)
        each waiter ran the factory itself. Waiters then take the leader's value."""
        calls, results = _race_get_or_set(cache, "unstored", lambda: "v", 6, ttl=0)
        assert results == ["v"] * 6
        assert calls == [1]

    def test_async_reentry_mark_ends_with_its_computation(self, cache: Cache) -> None:
        """Review finding: a task started inside a computation inherited its re-entry mark and
        skipped coalescing for good; the mark now counts only while that computation runs."""
        calls: list[str] = []

        async def scenario() -> list[Any]:
            go = asyncio.Event()
            later: list[asyncio.Task[Any]] = []

            async def second_round() -> str:
                calls.append("second")
                await asyncio.sleep(0.05)
                return "second"

            async def first_round() -> str:
                calls.append("first")

                async def background() -> Any:
                    await go.wait()
                    return await cache.aget_or_set("bg", second_round)

                later.append(asyncio.ensure_future(background()))
                return "first"

            assert await cache.aget_or_set("bg", first_round) == "first"
            await cache.adelete("bg")
            leader = asyncio.ensure_future(cache.aget_or_set("bg", second_round))
            await asyncio.sleep(0)  # the new leader is computing
            go.set()
            return [await leader, await later[0]]

        assert asyncio.run(scenario()) == ["second", "second"]
        assert calls == ["first", "second"]

    def test_get_or_set_waiters_read_the_stored_value(self, cache: Cache) -> None:
        """Waiters get the value as any reader would (their own copy where the provider
        decodes one per read), never the leader's object: one mutable result shared by
        concurrent callers was a review finding (a response's cookies set by every request)."""
        cache.set("probe", {"a": [1]})
        shares_objects = cache.get("probe") is cache.get("probe")
        calls, results = _race_get_or_set(cache, "shared", lambda: {"rows": [1, 2]}, 4)
        assert calls == [1]
        assert results == [{"rows": [1, 2]}] * 4
        if not shares_objects:
            assert len({id(r) for r in results}) == 4

    # -- listing and inspecting (tools) --------------------------------------------------------

    def _all_keys(self, cache: Cache, pattern: str, count: int) -> set[str]:
        seen: set[str] = set()
        cursor = ""
        for _ in range(10_000):
            cursor, keys = cache.scan_keys(pattern, cursor=cursor, count=count)
            assert all(isinstance(k, str) for k in keys)
            seen.update(keys)
            if not cursor:
                return seen
        raise AssertionError("scan_keys never finished")

    def test_scan_keys_pages_through_matching_keys(self, cache: Cache) -> None:
        if not self.lists_keys:
            with pytest.raises(UnsupportedOperation):
                cache.scan_keys()
            return
        cache.set_many({f"user:{i}": i for i in range(120)} | {"post:1": 1, "user": 0})
        assert self._all_keys(cache, "user:*", 25) == {f"user:{i}" for i in range(120)}
        assert self._all_keys(cache, "*", 1000) == {f"user:{i}" for i in range(120)} | {
            "post:1",
            "user",
        }
        assert self._all_keys(cache, "nothing*", 10) == set()

    def test_scan_keys_async(self, cache: Cache) -> None:
        if not self.lists_keys:
            return
        cache.set_many({"a1": 1, "a2": 2, "b1": 3})

        async def scenario() -> set[str]:
            seen: set[str] = set()
            cursor = ""
            while True:
                cursor, keys = await cache.ascan_keys("a*", cursor=cursor, count=1)
                seen.update(keys)
                if not cursor:
                    return seen

        assert asyncio.run(scenario()) == {"a1", "a2"}

    @pytest.mark.parametrize(
        ("pattern", "cursor", "count", "error"),
        [
            ("", "", 10, InvalidKey),
            ("*", None, 10, InvalidArgument),
            ("*", "", 0, InvalidArgument),
            ("*", "", 10_001, InvalidArgument),
            ("*", "", 1.5, InvalidArgument),
        ],
    )
    def test_scan_keys_rejects_bad_arguments(
        self, cache: Cache, pattern: str, cursor: Any, count: Any, error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            cache.scan_keys(pattern, cursor=cursor, count=count)

    def test_inspect(self, cache: Cache) -> None:
        cache.set("doc", {"a": [1, 2]}, ttl=self.ttl_unit * 10)
        cache.set("forever", "text", ttl=None)
        info = cache.inspect("doc")
        assert info is not None
        assert (info.key, info.value_type) == ("doc", "dict")
        assert info.ttl is not None
        assert 0 < info.ttl <= self.ttl_unit * 10
        assert info.size is None or info.size > 0
        forever = cache.inspect("forever")
        assert forever is not None
        assert (forever.ttl, forever.value_type) == (None, "str")
        assert cache.inspect("absent") is None
        assert asyncio.run(cache.ainspect("forever")) == forever
        with pytest.raises(InvalidKey):
            cache.inspect("")

    def test_inspect_is_not_a_lookup(self, cache: Cache) -> None:
        cache.set("k", 1)
        before = cache.get_stats()
        cache.inspect("k")
        cache.inspect("absent")
        after = cache.get_stats()
        assert (after.hits, after.misses) == (before.hits, before.misses)


class DistributedCacheContract(CacheContract):
    """Pattern deletion and tag invalidation, on top of :class:`CacheContract`."""

    #: Whether ``tagged_keys`` lists (else it must raise ``UnsupportedOperation``).
    lists_tagged_keys: ClassVar[bool] = True

    @pytest.fixture
    def cache(self, make_cache: MakeCache) -> Iterator[DistributedCache]:
        cache = make_cache()
        assert isinstance(cache, DistributedCache)
        yield cache
        cache.clear()
        cache.close()

    def test_delete_pattern(self, cache: DistributedCache) -> None:
        cache.set_many({"user:1": 1, "user:2": 2, "user:10": 10, "post:1": 1, "userx": 0})
        assert cache.delete_pattern("user:?") == 2
        assert cache.get_many(["user:1", "user:2", "user:10"]) == {"user:10": 10}
        assert cache.delete_pattern("user*") == 2
        assert cache.delete_pattern("[p]ost:*") == 1
        assert cache.delete_pattern("nothing*") == 0

    def test_delete_pattern_rejects_empty(self, cache: DistributedCache) -> None:
        with pytest.raises(InvalidKey):
            cache.delete_pattern("")

    def test_invalidate_tags(self, cache: DistributedCache) -> None:
        cache.set("a", 1, tags=["t1"])
        cache.set("b", 2, tags=["t1", "t2"])
        cache.set("c", 3, tags=["t2"])
        cache.set("d", 4)
        assert cache.invalidate_tags(["t1"]) == 2
        assert cache.get_many(["a", "b", "c", "d"]) == {"c": 3, "d": 4}
        assert cache.invalidate_tags(["t2", "unknown"]) == 1
        assert cache.invalidate_tags(["t1"]) == 0

    def test_tagged_keys_lists_what_invalidate_tags_would_remove(
        self, cache: DistributedCache
    ) -> None:
        cache.set("a", 1, tags=["t1"])
        cache.set("b", 2, tags=["t1", "t2"])
        cache.set("c", 3, tags=["t2"])
        cache.set("d", 4)
        if not self.lists_tagged_keys:
            with pytest.raises(UnsupportedOperation):
                cache.tagged_keys(["t1"])
            return
        assert cache.tagged_keys(["t1"]) == ["a", "b"]
        assert cache.tagged_keys(["t2", "unknown"]) == ["b", "c"]
        assert cache.tagged_keys(["unknown"]) == []
        cache.set("a", 5)  # an untagged overwrite drops the key's tags
        cache.delete("b")
        assert cache.tagged_keys(["t1"]) == []
        assert cache.tagged_keys(["t1", "t2"]) == ["c"]
        assert asyncio.run(cache.atagged_keys(["t2", "t1"])) == ["c"]
        assert cache.invalidate_tags(["t1", "t2"]) == 1
        assert cache.tagged_keys(["t2"]) == []
        with pytest.raises(TypeError):
            cache.tagged_keys("t1")  # a bare string is not a collection of tags

    def test_overwrite_replaces_tags(self, cache: DistributedCache) -> None:
        cache.set("a", 1, tags=["old"])
        cache.set("a", 2, tags=["new"])
        assert cache.invalidate_tags(["old"]) == 0
        assert cache.get("a") == 2
        cache.set("a", 3)
        assert cache.invalidate_tags(["new"]) == 0
        assert cache.get("a") == 3

    def test_replace_replaces_tags(self, cache: DistributedCache) -> None:
        if not self.replaces:
            pytest.skip("this provider has no replace (test_replace_only_when_present checks)")
        cache.set("a", 1, tags=["old"])
        assert cache.replace("a", 2, tags=["new"]) is True
        assert cache.replace("b", 2, tags=["new"]) is False
        assert cache.invalidate_tags(["old"]) == 0
        assert cache.invalidate_tags(["new"]) == 1
        assert not cache.exists("a")

        async def scenario() -> None:
            await cache.aset("c", 1, tags=["old"])
            assert await cache.areplace("c", 2, tags=["new"]) is True

        asyncio.run(scenario())
        assert cache.invalidate_tags(["new"]) == 1

    def test_tags_on_add_set_many_and_get_or_set(self, cache: DistributedCache) -> None:
        assert cache.add("a", 1, tags=["t"])
        cache.set_many({"b": 2, "c": 3}, tags=["t"])
        assert cache.get_or_set("d", lambda: 4, tags=["t"]) == 4
        assert cache.get_or_set("e", 5, tags=["t"]) == 5
        assert cache.invalidate_tags(["t"]) == 5

    def test_expired_tagged_keys_are_not_counted(
        self, cache: DistributedCache, advance: Callable[[float], None]
    ) -> None:
        cache.set("a", 1, ttl=self.ttl_unit, tags=["t"])
        cache.set("b", 2, tags=["t"])
        advance(self.ttl_unit * 1.5)
        assert cache.invalidate_tags(["t"]) == 1

    def test_invalidate_tags_rejects_a_bare_string(self, cache: DistributedCache) -> None:
        with pytest.raises(TypeError):
            cache.invalidate_tags("t")

    def test_async_pattern_and_tags(self, cache: DistributedCache) -> None:
        async def scenario() -> tuple[int, int]:
            await cache.aset("a:1", 1, tags=["t"])
            await cache.aset_many({"a:2": 2}, tags=["t"])
            await cache.aadd("b:1", 1, tags=["u"])
            got = await cache.aget_or_set("c", lambda: 1, tags=["u"])
            assert got == 1
            return await cache.adelete_pattern("a:*"), await cache.ainvalidate_tags(["u"])

        assert asyncio.run(scenario()) == (2, 2)
