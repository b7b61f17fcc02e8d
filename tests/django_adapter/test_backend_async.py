"""Every async method of the backends, on each provider; and proof that the Redis backend's
async methods do their I/O on ``redis.asyncio`` in the event loop, not on a thread running the
sync client (Django's default ``sync_to_async`` wrappers)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.connection
import redis.connection
from django.core.cache.backends.base import BaseCache

from cachekit_django import cache as backends

Factory = Callable[..., Callable[..., BaseCache]]
REDIS_PREFIX = "django-tests:"


def _build(kind: str, request: pytest.FixtureRequest, backend_factory: Factory) -> Any:
    if kind == "memory":
        return backend_factory(backends.MemoryCache, "async")()
    if kind == "redis":
        options = {"prefix": f"{REDIS_PREFIX}async:"}
        location = request.getfixturevalue("redis_location")
        return backend_factory(backends.RedisCache, location)(OPTIONS=options)
    if kind == "memcached":
        location = request.getfixturevalue("memcached_location")
        return backend_factory(backends.MemcachedCache, location)(OPTIONS={"prefix": "async-"})
    return backend_factory(backends.TieredCache, request.getfixturevalue("tiered_location"))()


@pytest.fixture(params=["memory", "redis", "memcached", "tiered"])
def backend(request: pytest.FixtureRequest, backend_factory: Factory) -> Any:
    return _build(request.param, request, backend_factory)


@pytest.fixture(params=["memory", "redis", "tiered"])
def distributed(request: pytest.FixtureRequest, backend_factory: Factory) -> Any:
    """The providers with tags and patterns (memcached's refusal: test_backend_extras)."""
    return _build(request.param, request, backend_factory)


def test_async_contract(backend: Any) -> None:
    async def scenario() -> None:
        cache = backend
        await cache.aclear()
        assert await cache.aget("k") is None
        assert await cache.aget("k", "default") == "default"
        await cache.aset("k", {"v": [1]})
        value = await cache.aget("k")
        value["v"].append(2)
        assert await cache.aget("k") == {"v": [1]}
        assert await cache.aadd("k", "other") is False
        assert await cache.aadd("new", "x") is True
        assert await cache.areplace("new", "y") is True
        assert await cache.areplace("absent", "y") is False
        assert await cache.aget("new") == "y"
        assert await cache.ahas_key("new")
        assert await cache.atouch("new", 60) is True
        assert await cache.atouch("missing") is False
        assert await cache.aset_many({"a": 1, "b": 2}) == []
        assert await cache.aget_many(["a", "b", "c"]) == {"a": 1, "b": 2}
        assert await cache.aincr("a", 5) == 6
        assert await cache.adecr("a") == 5
        with pytest.raises(ValueError, match="not found"):
            await cache.aincr("missing")
        assert await cache.adelete_many(["a", "b"]) == 2  # as delete_many
        assert await cache.adelete_many([]) is None
        assert await cache.aget_many(["a", "b"]) == {}
        assert await cache.adelete("new") is True
        assert await cache.adelete("new") is False
        assert await cache.aget_or_set("made", lambda: "computed") == "computed"
        assert await cache.aget_or_set("made", lambda: "again") == "computed"
        await cache.aset("versioned", 1)
        assert await cache.aincr_version("versioned") == 2
        assert await cache.aget("versioned", version=2) == 1
        assert await cache.adecr_version("versioned", version=2) == 1
        await cache.aset("zero", 1, 0)
        assert await cache.aget("zero") is None
        await cache.aclose()
        await cache.aclear()
        assert await cache.aget("k") is None

    asyncio.run(scenario())


def test_async_extras(distributed: Any) -> None:
    async def scenario() -> None:
        cache = distributed
        await cache.aclear()
        await cache.aset("p1", 1, tags=["t"])
        assert await cache.aadd("p2", 2, tags=["t"]) is True
        assert await cache.aset_many({"p3": 3}, tags=["t"]) == []
        assert await cache.aget_or_set("p4", lambda: 4, tags=["t"]) == 4
        assert await cache.ainvalidate_tags(["t"]) == 4
        await cache.aset_many({"s:1": 1, "s:2": 2, "u:1": 3})
        assert await cache.adelete_pattern("s:*") == 2
        assert await cache.attl("u:1") > 0
        assert await cache.attl("s:1") == 0

    asyncio.run(scenario())


@pytest.mark.servers
def test_redis_async_methods_use_redis_asyncio_not_the_sync_client(
    backend_factory: Factory, redis_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Spies on the connections' send (they call through to the real ones): every request,
    # however it was packed, leaves through one of them. Which did the async methods use?
    used: list[str] = []
    sync_send = redis.connection.AbstractConnection.send_packed_command
    async_send = redis.asyncio.connection.AbstractConnection.send_packed_command

    def spy_sync(self: Any, *args: Any, **kwargs: Any) -> Any:
        used.append("sync")
        return sync_send(self, *args, **kwargs)

    async def spy_async(self: Any, *args: Any, **kwargs: Any) -> Any:
        used.append("async")
        return await async_send(self, *args, **kwargs)

    options = {"prefix": f"{REDIS_PREFIX}async-io:"}
    cache: Any = backend_factory(backends.RedisCache, redis_location)(OPTIONS=options)
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", spy_sync)
    monkeypatch.setattr(
        redis.asyncio.connection.AbstractConnection, "send_packed_command", spy_async
    )

    async def scenario() -> None:
        await cache.aset("k", "v")
        assert await cache.aget("k") == "v"
        assert await cache.aget_many(["k"]) == {"k": "v"}
        assert await cache.ahas_key("k")
        await cache.adelete("k")

    asyncio.run(scenario())
    assert used
    assert set(used) == {"async"}
    used.clear()
    assert cache.get("k") is None  # the spies see the sync client too: the check above can fail
    assert set(used) == {"sync"}


@pytest.mark.servers
def test_redis_async_lock(backend_factory: Factory, redis_location: str) -> None:
    options = {"prefix": f"{REDIS_PREFIX}alock:"}
    cache: Any = backend_factory(backends.RedisCache, redis_location)(OPTIONS=options)

    async def scenario() -> None:
        async with cache.alock("job", timeout=5):
            busy = cache.alock("job", timeout=5, blocking_timeout=0.05)
            assert await busy.acquire() is False
        free = cache.alock("job", timeout=5)
        assert await free.acquire() is True
        await free.release()

    asyncio.run(scenario())
