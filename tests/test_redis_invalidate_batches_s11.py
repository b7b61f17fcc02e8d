"""``invalidate_tags`` of many tags runs as several INVALIDATE scripts of a bounded size, since
Redis serves no other client while a script runs (a bulk delete's 200,000 tags in one script
blocked the server for 0.8 s)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cachekit.providers import redis_scripts
from cachekit.providers.redis import RedisCache
from cachekit.testing.servers import RedisServer


def _scripts_run(cache: RedisCache) -> int:
    stats: dict[str, Any] = cache._sync().info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))


@pytest.mark.parametrize("use_async", [False, True])
def test_many_tags_are_invalidated_in_bounded_scripts(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, use_async: bool
) -> None:
    monkeypatch.setattr(redis_scripts, "INVALIDATE_BATCH", 4)
    cache = RedisCache(redis_server.url, prefix=f"s11inv{use_async}:")
    try:
        for i in range(10):
            cache.set(f"k{i}", i, tags=[f"row:{i}", "all"] if i % 2 else [f"row:{i}"])
        cache.set("untagged", "kept")
        cache.invalidate_tags(["none"])  # the script loaded: one call per batch from here
        tags = [f"row:{i}" for i in range(10)]
        before = _scripts_run(cache)
        if use_async:
            removed = asyncio.run(cache.ainvalidate_tags(tags))
        else:
            removed = cache.invalidate_tags(tags)
        assert _scripts_run(cache) - before == 3  # 10 tags in batches of 4
        assert removed == 10
        assert cache.get_many([f"k{i}" for i in range(10)]) == {}
        assert cache.get("untagged") == "kept"
        assert cache.invalidate_tags(["all"]) == 0  # its members went with their row tags
    finally:
        cache.clear()
        cache.close()
