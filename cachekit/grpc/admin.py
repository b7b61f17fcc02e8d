"""``CacheAdminService``: namespaces created, deleted, listed, inspected and configured."""

from __future__ import annotations

import asyncio
from typing import Any

from ..v1 import admin_pb2 as apb
from ..v1 import admin_pb2_grpc as apb_grpc
from .convert import InvalidArgument, check_duration, duration, seconds, stats_message
from .events import EventKind
from .metrics import RpcMetrics
from .namespaces import Namespace, Namespaces

__all__ = ["AdminServicer"]


def _info(ns: Namespace) -> apb.NamespaceInfo:
    current = ns.policy()
    policy = apb.NamespacePolicy(eviction_policy=current["eviction_policy"])
    if current["max_entries"] is not None:
        policy.max_entries = current["max_entries"]
    if current["max_memory_bytes"] is not None:
        policy.max_memory_bytes = current["max_memory_bytes"]
    if ns.default_ttl is not None:
        policy.default_ttl.CopyFrom(duration(ns.default_ttl))
    if ns.max_ttl is not None:
        policy.max_ttl.CopyFrom(duration(ns.max_ttl))
    return apb.NamespaceInfo(
        name=ns.name, provider=ns.cache.provider_name, url=ns.url, policy=policy
    )


def _limit(request: Any, field: str) -> float | None:
    value = seconds(check_duration(getattr(request, field), field))
    if value < 0:
        raise InvalidArgument(f"{field} must not be negative, got {value}s")
    return value or None


class AdminServicer(apb_grpc.CacheAdminServiceServicer):
    """The control-plane RPCs; shares ``namespaces`` and ``metrics`` with the cache service."""

    def __init__(self, namespaces: Namespaces, metrics: RpcMetrics) -> None:
        self.namespaces = namespaces
        self.metrics = metrics

    async def CreateNamespace(
        self, request: apb.CreateNamespaceRequest, context: Any
    ) -> apb.CreateNamespaceResponse:
        ns = self.namespaces.create(request.namespace, request.url)
        return apb.CreateNamespaceResponse(namespace=_info(ns))

    async def DeleteNamespace(
        self, request: apb.DeleteNamespaceRequest, context: Any
    ) -> apb.DeleteNamespaceResponse:
        ns = self.namespaces.remove(request.namespace)  # new calls find no such namespace
        self.metrics.forget(ns.name)  # a namespace created later under the name starts at 0
        ns.hub.publish(EventKind.NAMESPACE_DELETED)
        # Shielded: a DeleteNamespace cancelled while it waits (its deadline, a shutdown) still
        # closes the cache it removed, which nothing else owns any more.
        await asyncio.shield(self.namespaces.release(ns))  # once its running calls have ended
        return apb.DeleteNamespaceResponse()

    async def ListNamespaces(
        self, request: apb.ListNamespacesRequest, context: Any
    ) -> apb.ListNamespacesResponse:
        return apb.ListNamespacesResponse(namespaces=[_info(ns) for ns in self.namespaces])

    async def GetNamespaceStats(
        self, request: apb.GetNamespaceStatsRequest, context: Any
    ) -> apb.GetNamespaceStatsResponse:
        ns = self.namespaces.get(request.namespace)
        return apb.GetNamespaceStatsResponse(
            namespace=_info(ns),
            stats=stats_message(await ns.cache.aget_stats()),
            rpcs=[
                apb.RpcCount(method=method, code=code, count=count)
                for method, code, count in self.metrics.counts(ns.name)
            ],
        )

    async def ConfigurePolicy(
        self, request: apb.ConfigurePolicyRequest, context: Any
    ) -> apb.ConfigurePolicyResponse:
        ns = self.namespaces.get(request.namespace)
        changes: dict[str, Any] = {}
        if request.HasField("eviction_policy"):
            changes["policy"] = request.eviction_policy
        for field in ("max_entries", "max_memory_bytes"):
            if request.HasField(field):
                value = getattr(request, field)
                if value < 0:
                    raise InvalidArgument(f"{field} must not be negative (0: no bound)")
                changes[field] = value or None
        limits = {f: _limit(request, f) for f in ("default_ttl", "max_ttl") if request.HasField(f)}
        if changes:
            ns.reconfigure_memory(**changes)  # validated by create_cache: names a bad key
        if "default_ttl" in limits:
            ns.default_ttl = limits["default_ttl"]
        if "max_ttl" in limits:
            ns.max_ttl = limits["max_ttl"]
        return apb.ConfigurePolicyResponse(namespace=_info(ns))
