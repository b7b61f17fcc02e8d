"""A misconfigured alias raises a fresh copy of its configuration error on each call: one
instance raised every time grew its traceback (and the frames it holds) with each call."""

from __future__ import annotations

import pytest
from django.test import override_settings

from cachekit_django.cache import InvalidCacheConfiguration

BAD = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "bad": {
        "BACKEND": "cachekit_django.cache.CacheKitCache",
        "LOCATION": "memory://",
        "OPTIONS": {"max_entries": "many"},
    },
}


@override_settings(CACHES=BAD)
@pytest.mark.parametrize("call", ["get", "invalidate_tags", "set_tagged"])
def test_each_call_raises_its_own_error(call: str) -> None:
    from django.core.cache import caches

    cache = caches["bad"]
    calls = {
        "get": lambda: cache.get("k"),
        "invalidate_tags": lambda: cache.invalidate_tags(["t"]),
        "set_tagged": lambda: cache.set("k", 1, tags=["t"]),
    }
    raised = []
    for _ in range(3):
        with pytest.raises(InvalidCacheConfiguration, match="max_entries") as info:
            calls[call]()
        raised.append(info.value)
        assert info.value.key == "max_entries"
    assert len({id(error) for error in raised}) == 3
    depth = [len(list(_frames(error.__traceback__))) for error in raised]
    assert depth[0] == depth[-1]


def _frames(tb: object) -> list[object]:
    frames = []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next  # type: ignore[attr-defined]
    return frames


@override_settings(CACHES=BAD)
def test_the_commands_stats_path_raises_its_own_error_too() -> None:
    from cachekit_django.management.aliases import get_alias

    info = get_alias("bad")
    raised = []
    for _ in range(3):
        with pytest.raises(InvalidCacheConfiguration, match="max_entries") as caught:
            info.stats()
        raised.append(caught.value)
    assert len({id(error) for error in raised}) == 3
    assert raised[0].key == "max_entries"
    assert raised[0].__cause__ is info.configuration_error.__cause__  # type: ignore[union-attr]
