"""``create_cache``: one entry point from a URL or a small dict to a configured provider."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import parse_url
from .errors import ConfigurationError
from .interfaces import Cache
from .registry import provider_registry

__all__ = ["DEFAULT_URL", "create_cache"]

#: What ``create_cache()`` builds when given nothing: the bounded in-memory provider.
DEFAULT_URL = "memory://"


def create_cache(url_or_config: str | Mapping[str, Any] | None = None, **options: Any) -> Cache:
    """Build a cache from ``"scheme://...?opt=value"`` or ``{"url": ..., "opt": value}``.

    Keyword ``options`` (and dict keys other than ``url``) override the URL's query string and
    may hold Python objects (a clock, a listener). Every option is validated now: an unknown
    scheme or option, or a bad value, raises :class:`~cachekit.errors.ConfigurationError` naming
    the key and what it accepts.
    """
    extra: dict[str, Any]
    if url_or_config is None:
        url, extra = DEFAULT_URL, {}
    elif isinstance(url_or_config, str):
        url, extra = url_or_config, {}
    elif isinstance(url_or_config, Mapping):
        extra = dict(url_or_config)
        url = extra.pop("url", DEFAULT_URL)
        if not isinstance(url, str):
            raise ConfigurationError(f"'url' must be a str, got {url!r}", key="url")
    else:
        raise ConfigurationError(
            f"create_cache() takes a URL string or a dict, got {type(url_or_config).__name__}",
            key="url",
        )
    parsed = parse_url(url)
    provider = provider_registry.get(parsed.scheme, key="url")
    cache: Cache = provider.from_url(parsed, {**extra, **options})
    return cache
