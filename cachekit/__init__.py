"""cachekit: one cache contract, many providers, for Python web projects.

>>> import cachekit
>>> cache = cachekit.create_cache("memory://?max_entries=1000&policy=adaptive")
>>> cache.set("answer", 42)
>>> cache.get("answer")
42
"""

from __future__ import annotations

from . import errors
from .entry import EntryInfo
from .errors import (
    BackendUnavailable,
    CacheError,
    ConfigurationError,
    InvalidArgument,
    InvalidArgumentType,
    InvalidKey,
    LockError,
    LockNotOwned,
    NotAnInteger,
    SerializationError,
    UnsupportedOperation,
    ValueTooLarge,
)
from .factory import create_cache
from .interfaces import Cache, DistributedCache
from .registry import policy_registry, provider_registry, serializer_registry
from .sentinels import DEFAULT, MISSING
from .stats import CacheStats

__all__ = [
    "DEFAULT",
    "MISSING",
    "BackendUnavailable",
    "Cache",
    "CacheError",
    "CacheStats",
    "ConfigurationError",
    "DistributedCache",
    "EntryInfo",
    "InvalidArgument",
    "InvalidArgumentType",
    "InvalidKey",
    "LockError",
    "LockNotOwned",
    "NotAnInteger",
    "SerializationError",
    "UnsupportedOperation",
    "ValueTooLarge",
    "create_cache",
    "errors",
    "policy_registry",
    "provider_registry",
    "serializer_registry",
]

__version__ = "0.1.0"
