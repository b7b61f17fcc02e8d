"""Regression tests of ``get_or_set``'s fill on a real redis-server, from a review:

* the stampede lock's release failing (Redis gone while the factory ran) replaced the
  factory's own exception with ``RedisUnavailable``;
* an entry that cannot be decoded, written between the lookup and the fill (a Flask-Caching
  pickle during a rolling upgrade), made the fill's re-read raise ``SerializationError``.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
import redis

from cachekit.providers.redis import RedisCache
from cachekit.testing.servers import RedisServer

FAST = {"retries": 0, "socket_connect_timeout": 0.5, "socket_timeout": 0.5}
#: What Flask-Caching's RedisCache (cachelib) stores: "!" and a pickle.
CACHELIB_ENTRY = b"!" + pickle.dumps("old page")


class ViewError(Exception):
    pass


@pytest.fixture
def make(fresh_redis_server: RedisServer) -> Iterator[Any]:
    made: list[RedisCache] = []

    def make(**options: Any) -> RedisCache:
        cache = RedisCache(fresh_redis_server.url, **{**FAST, **options})
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


def test_a_failed_lock_release_does_not_replace_the_factorys_error(
    make: Any, fresh_redis_server: RedisServer
) -> None:
    cache = make()

    def factory() -> str:
        fresh_redis_server.kill()  # Redis goes away while the value is computed
        raise ViewError("the view's own")

    with pytest.raises(ViewError):
        cache.get_or_set("k", factory)


def test_a_failed_async_lock_release_does_not_replace_the_factorys_error(
    make: Any, fresh_redis_server: RedisServer
) -> None:
    cache = make()

    async def factory() -> str:
        fresh_redis_server.kill()
        raise ViewError("the view's own")

    async def main() -> None:
        with pytest.raises(ViewError):
            await cache.aget_or_set("k", factory)

    asyncio.run(main())


@pytest.mark.parametrize("stampede_timeout", [None, 5.0])
def test_an_undecodable_entry_written_before_the_fill_is_a_miss(
    make: Any, fresh_redis_server: RedisServer, stampede_timeout: float | None
) -> None:
    """An adapter makes its own lookup, then calls ``_fill_miss`` (the Flask decorators): the
    entry written in between is no value a leader stored, so the factory's value is served."""
    cache = make(prefix="fill:", stampede_timeout=stampede_timeout)
    raw = redis.Redis(host=fresh_redis_server.host, port=fresh_redis_server.port)
    raw.set("fill:k", CACHELIB_ENTRY)
    assert cache._fill_miss("k", lambda: "new page", partial(cache.add)) == "new page"
    raw.close()


@pytest.mark.parametrize("stampede_timeout", [None, 5.0])
def test_an_undecodable_entry_written_before_the_async_fill_is_a_miss(
    make: Any, fresh_redis_server: RedisServer, stampede_timeout: float | None
) -> None:
    cache = make(prefix="fill:", stampede_timeout=stampede_timeout)
    raw = redis.Redis(host=fresh_redis_server.host, port=fresh_redis_server.port)
    raw.set("fill:k", CACHELIB_ENTRY)

    async def main() -> Any:
        return await cache._afill_miss("k", lambda: "new page", partial(cache.aadd))

    assert asyncio.run(main()) == "new page"
    raw.close()
