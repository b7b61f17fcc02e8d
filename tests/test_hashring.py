"""The ketama ring: libketama's layout, spread, and the keys that move when servers change."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from cachekit.providers.hashring import POINTS_PER_SERVER, KetamaRing, ketama_hash

KEYS = [f"user:{i}".encode() for i in range(10_000)]
THREE = ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"]


def owners(ring: KetamaRing) -> dict[bytes, str]:
    return {key: ring.get_node(key) for key in KEYS}


def test_key_hash_is_md5_little_endian() -> None:
    digest = hashlib.md5(b"foo").digest()
    assert ketama_hash(b"foo") == int.from_bytes(digest[:4], "little")


def test_points_per_server() -> None:
    ring = KetamaRing(THREE)
    assert len(ring._hashes) == 3 * POINTS_PER_SERVER
    assert Counter(ring._owners) == dict.fromkeys(THREE, POINTS_PER_SERVER)


def test_default_port_is_left_out_of_point_names() -> None:
    # libmemcached names the points of a server on 11211 "host-i", others "host:port-i".
    assert KetamaRing(["a:11211"])._hashes == KetamaRing(["a:11211"])._hashes
    with_port = KetamaRing(["a:11211", "b:11212"])
    first = hashlib.md5(b"a-0").digest()
    assert int.from_bytes(first[:4], "little") in with_port._hashes
    second = hashlib.md5(b"b:11212-0").digest()
    assert int.from_bytes(second[:4], "little") in with_port._hashes


def test_keys_spread_evenly() -> None:
    counts = Counter(owners(KetamaRing(THREE)).values())
    assert set(counts) == set(THREE)
    for count in counts.values():
        assert 0.2 < count / len(KEYS) < 0.47


def test_adding_a_fourth_node_moves_about_a_quarter() -> None:
    before = owners(KetamaRing(THREE))
    after = owners(KetamaRing([*THREE, "10.0.0.4:11211"]))
    moved = [key for key in KEYS if before[key] != after[key]]
    assert 0.15 <= len(moved) / len(KEYS) <= 0.35
    # Every moved key moved to the new node: nothing is shuffled between the old ones.
    assert {after[key] for key in moved} == {"10.0.0.4:11211"}


def test_removing_a_node_moves_only_its_keys() -> None:
    before = owners(KetamaRing(THREE))
    after = owners(KetamaRing(THREE[:2]))
    for key in KEYS:
        if before[key] != THREE[2]:
            assert after[key] == before[key]
        else:
            assert after[key] in THREE[:2]


def test_iter_nodes_starts_at_the_owner_and_lists_each_node_once() -> None:
    ring = KetamaRing(THREE)
    for key in KEYS[:200]:
        order = list(ring.iter_nodes(key))
        assert order[0] == ring.get_node(key)
        assert sorted(order) == sorted(THREE)


def test_failover_order_matches_the_ring_without_the_owner() -> None:
    # Skipping a dead node sends its keys where removing it would: the next node clockwise.
    ring, without = KetamaRing(THREE), KetamaRing(THREE[:2])
    for key in KEYS[:2000]:
        order = list(ring.iter_nodes(key))
        if order[0] == THREE[2]:
            assert order[1] == without.get_node(key)


def test_single_node_and_duplicates() -> None:
    ring = KetamaRing(["a:1", "a:1"])
    assert ring.nodes == ("a:1",)
    assert list(ring.iter_nodes(b"k")) == ["a:1"]
    with pytest.raises(ValueError, match="at least one"):
        KetamaRing([])
