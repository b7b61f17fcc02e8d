"""Lazy registries of providers, policies and serializers, open to third parties.

Built-in entries are ``"module:attribute"`` strings imported on first use, so that naming a
provider never imports a driver it does not need. Names not built in are looked up in the
entry-point group (``cachekit.providers``, ``cachekit.policies``, ``cachekit.serializers``), so a
third-party package plugs in by declaring, e.g.::

    [project.entry-points."cachekit.providers"]
    mycache = "mypkg.cache:MyCache"

and ``create_cache("mycache://...")`` finds it. Code can also call ``register()`` directly.
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from .errors import ConfigurationError

__all__ = ["Registry", "policy_registry", "provider_registry", "serializer_registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object, resolved lazily from import paths or entry points."""

    def __init__(self, kind: str, group: str, builtins: dict[str, str]) -> None:
        self.kind = kind
        self.group = group
        self._paths: dict[str, str] = dict(builtins)
        self._loaded: dict[str, T] = {}
        self._lock = threading.Lock()
        self._scanned = False

    def register(self, name: str, target: T | str) -> None:
        """Add or replace an entry; ``target`` is the object or a ``"module:attr"`` path."""
        with self._lock:
            self._loaded.pop(name, None)
            if isinstance(target, str):
                self._paths[name] = target
            else:
                self._paths.pop(name, None)
                self._loaded[name] = target

    def get(self, name: str, *, key: str | None = None) -> T:
        """Resolve ``name``; an unknown name raises ``ConfigurationError`` listing known ones."""
        found = self._loaded.get(name)
        if found is not None:
            return found
        with self._lock:
            if name not in self._paths and not self._scanned:
                self._scan_entry_points()
            path = self._paths.get(name)
        if path is None:
            raise ConfigurationError(
                f"unknown {self.kind} {name!r}; accepted: {', '.join(self.names())}",
                key=key or self.kind,
            )
        obj = self._import(path, name)
        with self._lock:
            self._loaded[name] = obj
        return obj

    def names(self) -> list[str]:
        """Every known name (built-in, registered and from entry points), sorted."""
        with self._lock:
            if not self._scanned:
                self._scan_entry_points()
            return sorted({*self._paths, *self._loaded})

    def _scan_entry_points(self) -> None:
        for ep in entry_points(group=self.group):
            self._paths.setdefault(ep.name, ep.value)
        self._scanned = True

    def _import(self, path: str, name: str) -> T:
        module_name, _, attr = path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigurationError(
                f"{self.kind} {name!r} cannot be loaded ({exc}); install the extra it needs, "
                f"e.g. pip install 'cachekit[{_EXTRA_HINTS.get(name, 'all')}]'",
                key=self.kind,
            ) from exc
        obj: Any = module
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
        return obj  # type: ignore[no-any-return]


_EXTRA_HINTS = {
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
    "redis+sentinel": "redis",
    "redis+cluster": "redis",
    "memcached": "memcached",
    "grpc": "grpc",
    "grpcs": "grpc",
    "protobuf": "grpc",
    "msgpack": "fast",
}

#: URL scheme -> provider class.
provider_registry: Registry[Any] = Registry(
    "provider",
    "cachekit.providers",
    {
        "memory": "cachekit.providers.memory:MemoryCache",
        "file": "cachekit.providers.filesystem:FileCache",
        "null": "cachekit.providers.null:NullCache",
        "redis": "cachekit.providers.redis:RedisCache",
        "rediss": "cachekit.providers.redis:RedisCache",
        "unix": "cachekit.providers.redis:RedisCache",
        "redis+sentinel": "cachekit.providers.redis:RedisCache",
        "redis+cluster": "cachekit.providers.redis_cluster:RedisClusterCache",
        "memcached": "cachekit.providers.memcached:MemcachedCache",
        "tiered": "cachekit.providers.tiered:TieredCache",
        "grpc": "cachekit.grpc.client:GrpcCache",
        "grpcs": "cachekit.grpc.client:GrpcCache",
    },
)
#: Eviction policy name -> policy class (memory provider).
policy_registry: Registry[Any] = Registry(
    "policy",
    "cachekit.policies",
    {
        "lru": "cachekit.policies.lru:LRUPolicy",
        "lfu": "cachekit.policies.lfu:LFUPolicy",
        "ttl": "cachekit.policies.ttl:TTLPolicy",
        "adaptive": "cachekit.policies.adaptive:AdaptivePolicy",
    },
)
#: Serializer name -> serializer class.
serializer_registry: Registry[Any] = Registry(
    "serializer",
    "cachekit.serializers",
    {
        "json": "cachekit.serialization.json:JsonSerializer",
        "pickle": "cachekit.serialization.pickle:PickleSerializer",
        "protobuf": "cachekit.serialization.protobuf:ProtobufSerializer",
        "msgpack": "cachekit.serialization.msgpack:MsgpackSerializer",
    },
)
