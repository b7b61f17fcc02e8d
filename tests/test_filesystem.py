"""What the file-system provider adds to the contract: sharing, the bound, corruption, failures.

The contract itself runs in ``test_filesystem_contract.py``; these tests look at the directory
the provider writes, and at several caches (and processes) using one directory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cachekit import MISSING, create_cache
from cachekit.errors import BackendUnavailable, ConfigurationError
from cachekit.providers.filesystem import FileCache
from cachekit.testing import FakeClock


def entry_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix == ".ckc")


def entry_path(directory: Path, key: str) -> Path:
    """The documented layout: the SHA-256 of the UTF-8 key, hex, plus ``.ckc``."""
    return directory / (hashlib.sha256(key.encode()).hexdigest() + ".ckc")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_700_000_000.0)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "cache"


# -- sharing one directory -----------------------------------------------------------------


def test_two_caches_over_one_directory_see_each_others_writes(
    directory: Path, clock: FakeClock
) -> None:
    first = FileCache(directory, clock=clock)
    second = create_cache(f"file://{directory}", clock=clock)
    assert isinstance(second, FileCache)
    first.set("a", {"n": 1}, tags=["t"])
    assert second.get("a") == {"n": 1}
    assert second.incr("n") == 1
    assert first.incr("n") == 2
    assert second.add("a", "other") is False
    assert second.invalidate_tags(["t"]) == 1
    assert first.get("a", MISSING) is MISSING
    second.set("b", 2, ttl=30)
    assert first.ttl("b") == 30
    clock.advance(31)
    assert first.get("b", MISSING) is MISSING
    assert sorted(first.scan_keys()[1]) == ["n"]
    second.clear()
    assert first.get_many(["a", "b", "n"]) == {}


_WORKER = textwrap.dedent(
    """
    import sys
    from cachekit.providers.filesystem import FileCache

    cache = FileCache(sys.argv[1])
    print(cache.add("winner", sys.argv[2]))
    for _ in range(int(sys.argv[3])):
        cache.incr("counter")
    """
)


def test_incr_and_add_are_atomic_across_processes(directory: Path) -> None:
    processes, per_process = 3, 150
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(directory), f"p{n}", str(per_process)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]
    outputs = [worker.communicate(timeout=120)[0].split() for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * processes
    cache = FileCache(directory)
    assert cache.get("counter") == processes * per_process
    assert sorted(outputs) == sorted([["True"]] + [["False"]] * (processes - 1))
    assert cache.get("winner") in {f"p{n}" for n in range(processes)}


def test_readers_never_see_a_partial_file(directory: Path) -> None:
    cache = FileCache(directory)
    values = [bytes([n]) * 200_000 for n in range(8)]
    cache.set("big", values[0])
    stop = threading.Event()
    seen: list[Any] = []

    def write() -> None:
        for n in range(200):
            cache.set("big", values[n % len(values)])
        stop.set()

    writer = threading.Thread(target=write)
    writer.start()
    while not stop.is_set():
        seen.append(cache.get("big", MISSING))
    writer.join()
    assert seen
    assert all(value in values for value in seen)
    assert cache.get_stats().extra["corrupt_files_total"] == 0


# -- the files themselves ------------------------------------------------------------------


def test_nothing_is_created_before_the_first_write(directory: Path) -> None:
    cache = FileCache(directory)
    assert cache.get("k", MISSING) is MISSING
    assert cache.get_stats().items == 0
    cache.clear()
    assert not directory.exists()
    cache.set("k", 1)
    assert entry_files(directory) == [entry_path(directory, "k")]


def test_writes_leave_no_temporaries_and_respect_the_mode(tmp_path: Path) -> None:
    private = FileCache(tmp_path / "private")
    shared = create_cache(f"file://{tmp_path}/shared?mode=640")
    for n in range(20):
        private.set(f"k{n}", n)
        shared.set(f"k{n}", n)
        private.incr("n")
        private.touch(f"k{n}", ttl=60)
    for name, mode in (("private", 0o600), ("shared", 0o640)):
        files = list((tmp_path / name).iterdir())
        assert not [f for f in files if f.suffix == ".tmp"]
        assert {stat.S_IMODE(f.stat().st_mode) for f in files if f.suffix == ".ckc"} == {mode}


def test_every_directory_it_creates_is_private(tmp_path: Path) -> None:
    """Found by Django's own cache tests (``test_cache_dir_permissions``, CVE-2020-24584):
    ``os.makedirs`` left the parents it created world-readable."""
    tmp_path.chmod(0o755)
    cache = FileCache(tmp_path / "a" / "b" / "leaf")
    cache.set("k", 1)
    for path in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "leaf"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755  # an existing parent is left as is


def test_clear_removes_only_its_own_files(directory: Path) -> None:
    directory.mkdir()
    (directory / "notes.txt").write_text("keep me")
    (directory / ("0" * 64)).write_bytes(b"a cachelib entry: not ours")
    (directory / "sub").mkdir()
    (directory / ".ckc-leftover.tmp").write_bytes(b"a dead writer's temporary")
    cache = FileCache(directory)
    cache.set_many({"a": 1, "b": 2})
    assert cache.get_stats().items == 2
    cache.clear()
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [".cachekit.lock", "0" * 64, "notes.txt", "sub"]
    )
    assert cache.get_stats().items == 0


def test_a_file_under_another_keys_name_is_a_miss_not_a_wrong_value(directory: Path) -> None:
    cache = FileCache(directory)
    cache.set("a", "value of a")
    os.replace(entry_path(directory, "a"), entry_path(directory, "b"))  # a hash collision
    assert cache.get("b", MISSING) is MISSING
    assert cache.get_stats().extra["corrupt_files_total"] == 0


# -- expiry and the bound ------------------------------------------------------------------


def test_expired_files_are_removed_when_read(directory: Path, clock: FakeClock) -> None:
    cache = FileCache(directory, clock=clock)
    cache.set("short", 1, ttl=10)
    cache.set("long", 2, ttl=100)
    clock.advance(11)
    assert entry_path(directory, "short").exists()  # nothing sweeps behind the caller's back
    assert cache.get("short", MISSING) is MISSING
    assert not entry_path(directory, "short").exists()
    assert entry_files(directory) == [entry_path(directory, "long")]
    assert cache.get_stats().expirations == 1


def test_pruning_removes_expired_files_before_live_ones(directory: Path, clock: FakeClock) -> None:
    cache = FileCache(directory, max_entries=10, clock=clock)
    cache.set_many({f"old{n}": n for n in range(5)}, ttl=10)
    cache.set_many({f"live{n}": n for n in range(5)})
    clock.advance(11)
    cache.set("new", 0)  # 11 files > 10: the 5 expired go, the live ones fit
    assert len(entry_files(directory)) == 6
    assert cache.get_many([f"live{n}" for n in range(5)] + ["new"]) == {
        **{f"live{n}": n for n in range(5)},
        "new": 0,
    }
    stats = cache.get_stats()
    assert (stats.expirations, stats.evictions) == (5, 0)


def test_the_bound_evicts_the_least_recently_written(directory: Path) -> None:
    cache = FileCache(directory, max_entries=20)
    for n in range(50):
        cache.set(f"k{n}", n)
        assert len(entry_files(directory)) <= 20
    assert cache.get("k49") == 49
    assert cache.get("k0", MISSING) is MISSING
    survivors = {k for k in (f"k{n}" for n in range(50)) if cache.exists(k)}
    assert survivors == {f"k{n}" for n in range(50 - len(survivors), 50)}
    cache.set("k49", "rewritten")  # not a new entry: nothing is pruned
    assert len(entry_files(directory)) == len(survivors)
    assert cache.get_stats().evictions == 50 - len(survivors)


def test_the_bound_holds_for_caches_sharing_the_directory(directory: Path) -> None:
    first, second = FileCache(directory, max_entries=10), FileCache(directory, max_entries=10)
    for n in range(40):
        (first if n % 2 else second).set(f"k{n}", n)
        assert len(entry_files(directory)) <= 10
    assert first.get("k39") == 39
    assert second.get("k38") == 38


def test_the_count_heals_after_files_are_deleted_by_hand(directory: Path) -> None:
    cache = FileCache(directory, max_entries=5)
    cache.set_many({f"k{n}": n for n in range(5)})
    for path in entry_files(directory):
        path.unlink()  # the stored count still says 5
    for n in range(5):
        cache.set(f"new{n}", n)
    assert len(entry_files(directory)) == 5  # nothing evicted on the strength of a stale count
    assert cache.get_stats().evictions == 0


def test_stale_temporaries_are_pruned(directory: Path) -> None:
    cache = FileCache(directory, max_entries=2)
    cache.set("a", 1)
    stale, fresh = directory / ".ckc-dead.tmp", directory / ".ckc-busy.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(stale, (0, 0))
    cache.set_many({"b": 2, "c": 3})  # over the bound: pruning runs
    assert not stale.exists()
    assert fresh.exists()  # may belong to a writer that is still running


# -- corrupt files -------------------------------------------------------------------------


def _header(key_len: int, tags_len: int = 0, magic: bytes = b"CKF\x01") -> bytes:
    import struct

    return struct.pack(">4sdQII", magic, float("inf"), 0, key_len, tags_len)


CORRUPTIONS = {
    "empty": b"",
    "truncated header": b"CKF\x01\x00",
    "foreign file": b"PK\x03\x04" + b"\x00" * 60,
    "lengths past the end": _header(1 << 30),
    "key not UTF-8": _header(2) + b"\xff\xfe" + b"1",
    "tags not JSON": _header(1, 3) + b"k{x]1",
    "payload undecodable": _header(1) + b"k" + b"\xc1\x01\x04\x00not a pickle",
}


@pytest.mark.parametrize("content", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_a_corrupt_file_is_a_counted_logged_miss(
    directory: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    cache = FileCache(directory)
    cache.set("k", "good")
    cache.set("other", 1)
    entry_path(directory, "k").write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="cachekit.providers.filesystem"):
        assert cache.get("k", MISSING) is MISSING
    assert "corrupt" in caplog.text
    assert not entry_path(directory, "k").exists()
    stats = cache.get_stats()
    assert stats.extra["corrupt_files_total"] == 1
    assert stats.misses == 1
    cache.set("k", "again")
    assert cache.get("k") == "again"


@pytest.mark.parametrize("content", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_every_operation_survives_a_corrupt_file(directory: Path, content: bytes) -> None:
    """Never an exception: header-only operations (exists, ttl, add's check, scan_keys) may
    still see an entry whose payload alone is bad; reading its value finds it corrupt."""
    cache = FileCache(directory, max_entries=3)
    operations: dict[str, Callable[[], object]] = {
        "exists": lambda: cache.exists("k"),
        "ttl": lambda: cache.ttl("k"),
        "incr": lambda: cache.incr("k"),
        "inspect": lambda: cache.inspect("k"),
        "add": lambda: cache.add("k", 1),
        "touch": lambda: cache.touch("k"),
        "delete": lambda: cache.delete("k"),
        "scan_keys": cache.scan_keys,
        "delete_pattern": lambda: cache.delete_pattern("k*"),
        "invalidate_tags": lambda: cache.invalidate_tags(["t"]),
        "get_or_set": lambda: cache.get_or_set("k", 5),
        "get_many": lambda: cache.get_many(["k", "other"]),
        "prune": lambda: cache.set_many({"x": 1, "y": 2}),  # over the bound: reads every header
    }
    for name, operation in operations.items():
        cache.clear()
        cache.set("other", 1)
        cache.set("k", 1, tags=["t"])
        entry_path(directory, "k").write_bytes(content)
        operation()
        assert cache.get("k", MISSING) in (MISSING, 1, 2, 5), name
        assert cache.get("other") == 1, name
    assert cache.incr("k") >= 1


# -- configuration and failures ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("file:///tmp/ck?max_entries=0", "max_entries"),
        ("file:///tmp/ck?max_entries=many", "max_entries"),
        ("file:///tmp/ck?default_ttl=-1", "default_ttl"),
        ("file:///tmp/ck?mode=999", "mode"),
        ("file:///tmp/ck?mode=044", "mode"),
        ("file:///tmp/ck?mode=rw", "mode"),
        ("file:///tmp/ck?serializer=yaml", "serializer"),
        ("file:///tmp/ck?compression=lz4", "compression"),
        ("file:///tmp/ck?fail_open=maybe", "fail_open"),
        ("file:///tmp/ck?stampede_timeout=0", "stampede_timeout"),
        ("file:///tmp/ck?max_entriez=5", "max_entriez"),
        ("file://cachehost/tmp/ck", "url"),
        ("file://user:pw@localhost/tmp/ck", "url"),
        ("file://", "directory"),
    ],
)
def test_bad_url_options_name_the_key(url: str, key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        create_cache(url)
    assert info.value.key == key
    assert key in str(info.value)


def test_bad_constructor_arguments_name_the_key(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"directory": a_file}, "directory"),
        ({"directory": ""}, "directory"),
        ({"max_entries": 0}, "max_entries"),
        ({"mode": 0o1777}, "mode"),
        ({"default_ttl": 0}, "default_ttl"),
        ({"clock": 3}, "clock"),
        ({"stampede_timeout": -1}, "stampede_timeout"),
        ({"serializer": object()}, "serializer"),
    ]
    for options, key in cases:
        options.setdefault("directory", tmp_path / "ok")
        with pytest.raises(ConfigurationError) as info:
            FileCache(**options)
        assert info.value.key == key, options


def test_options_from_the_url_and_the_dict(tmp_path: Path) -> None:
    cache = create_cache(
        f"file://localhost{tmp_path}/a%20b?max_entries=7&default_ttl=60&serializer=json&mode=0o640",
        name="pages",
    )
    assert isinstance(cache, FileCache)
    assert (cache.directory, cache.max_entries, cache.default_ttl, cache.mode, cache.name) == (
        f"{tmp_path}/a b",
        7,
        60.0,
        0o640,
        "pages",
    )
    assert cache.serializer.name == "json"
    unbounded = create_cache({"url": "file://", "directory": str(tmp_path / "u")}, max_entries=None)
    assert unbounded.max_entries is None  # type: ignore[attr-defined]


def test_a_failing_disk_raises_unless_fail_open(tmp_path: Path) -> None:
    path = tmp_path / "gone"
    closed, open_ = FileCache(path), FileCache(path, fail_open=True)
    path.write_text("now a file: every open under it fails with NotADirectoryError")
    with pytest.raises(BackendUnavailable):
        closed.set("k", 1)
    with pytest.raises(BackendUnavailable):
        closed.get("k")
    with pytest.raises(OSError):  # also an OSError, as from FileBasedCache (Django's tests)
        closed.get("k")
    open_.set("k", 1)  # dropped, counted
    assert open_.get("k", MISSING) is MISSING
    assert open_.add("k", 1) is False
    assert open_.delete("k") is False
    with pytest.raises(BackendUnavailable):
        open_.incr("n")  # no honest fallback number
    with pytest.raises(BackendUnavailable):
        open_.scan_keys()  # tools fail closed
    stats = open_.get_stats()  # reported, not raised: the failures stay visible
    assert stats.extra["available"] is False
    assert stats.extra["fail_open_set_errors_total"] == 1
    assert stats.extra["fail_open_incr_errors_total"] == 1
