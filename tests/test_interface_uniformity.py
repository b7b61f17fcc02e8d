"""Every registered provider exposes the whole contract, each method with an async twin."""

from __future__ import annotations

import pytest

from cachekit import Cache, DistributedCache
from cachekit.registry import provider_registry


def public_methods(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_") and callable(getattr(cls, name))}


@pytest.mark.parametrize("scheme", provider_registry.names())
def test_interface_uniformity(scheme: str) -> None:
    provider = provider_registry.get(scheme)
    assert issubclass(provider, Cache)
    assert callable(getattr(provider, "from_url", None)), f"{scheme}: no from_url"
    contract = DistributedCache if issubclass(provider, DistributedCache) else Cache
    required = public_methods(contract)
    assert required - public_methods(provider) == set()
    sync = {name for name in required if not name.startswith("a") or name == "add"}
    for name in sync:
        assert callable(getattr(provider, "a" + name, None)), f"{scheme}: no async twin of {name}"
    assert provider.provider_name, f"{scheme}: provider_name is empty"


def test_every_built_in_scheme_is_listed() -> None:
    expected = {
        "memory", "redis", "rediss", "unix", "redis+sentinel", "redis+cluster", "memcached",
        "tiered",
    }  # fmt: skip
    assert expected <= set(provider_registry.names())
