"""A ketama consistent-hash ring: which memcached server holds a key.

Follows the point layout of libketama (R. Jones, last.fm, 2007), which libmemcached and pylibmc
also use: every server gets 160 points on a 32-bit circle, four per MD5 digest of
``"host:port-i"`` (``i`` from 0 to 39; libmemcached writes ``"host-i"`` when the port is the
default 11211), each point being four digest bytes read little-endian. A key is hashed to the
first four bytes of its own MD5 (little-endian) and belongs to the first point clockwise from
there. Adding a server to ``n`` therefore moves about ``1/(n+1)`` of the keys (those whose
points the new server takes over), and removing one moves only that server's keys. Servers
are equally weighted.

MD5 is used as a well-spread, portable hash, not for security.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterable, Iterator

__all__ = ["POINTS_PER_SERVER", "KetamaRing", "ketama_hash"]

#: Points per server on the circle, as libketama: 40 MD5 digests of 4 points each.
POINTS_PER_SERVER = 160
_DIGESTS_PER_SERVER = POINTS_PER_SERVER // 4
#: The port libmemcached leaves out of a server's point names.
_DEFAULT_PORT = 11211


def ketama_hash(key: bytes) -> int:
    """A key's position on the circle: the first 4 bytes of its MD5, little-endian."""
    return int.from_bytes(hashlib.md5(key, usedforsecurity=False).digest()[:4], "little")


def _point_name(node: str) -> str:
    host, sep, port = node.rpartition(":")
    if sep and port == str(_DEFAULT_PORT):
        return host
    return node


class KetamaRing:
    """Immutable ring over server names such as ``"10.0.0.1:11211"``."""

    __slots__ = ("_hashes", "_owners", "nodes")

    def __init__(self, nodes: Iterable[str]) -> None:
        self.nodes: tuple[str, ...] = tuple(dict.fromkeys(nodes))
        if not self.nodes:
            raise ValueError("a hash ring needs at least one node")
        points: list[tuple[int, str]] = []
        for node in self.nodes:
            name = _point_name(node)
            for i in range(_DIGESTS_PER_SERVER):
                digest = hashlib.md5(f"{name}-{i}".encode(), usedforsecurity=False).digest()
                for h in range(4):
                    points.append((int.from_bytes(digest[h * 4 : h * 4 + 4], "little"), node))
        # Equal points (an MD5 collision on 32 bits) are ordered by node name, deterministically.
        points.sort()
        self._hashes = [point for point, _ in points]
        self._owners = [node for _, node in points]

    def __len__(self) -> int:
        return len(self.nodes)

    def _index(self, key: bytes) -> int:
        index = bisect_left(self._hashes, ketama_hash(key))
        return 0 if index == len(self._hashes) else index

    def get_node(self, key: bytes) -> str:
        """The server that owns ``key``."""
        if len(self.nodes) == 1:
            return self.nodes[0]
        return self._owners[self._index(key)]

    def iter_nodes(self, key: bytes) -> Iterator[str]:
        """Every server once, in ring order from ``key``'s owner: the failover order."""
        if len(self.nodes) == 1:
            yield self.nodes[0]
            return
        owners = self._owners
        start = self._index(key)
        seen: set[str] = set()
        for offset in range(len(owners)):
            node = owners[(start + offset) % len(owners)]
            if node not in seen:
                seen.add(node)
                yield node
                if len(seen) == len(self.nodes):
                    return

    def __repr__(self) -> str:
        return f"<KetamaRing nodes={list(self.nodes)!r}>"
