"""The ``file://`` provider's files: their names, the entry encoding, corrupt-file detection.

``key`` lives in ``<directory>/<sha256(key)>.ckc``: a header (magic ``CKF\\x01``, expiry as
epoch seconds with ``inf`` for never, write time in ns, key and tag lengths), the key (so a hash
collision is a miss, not a wrong value, and keys can be listed), the tags as JSON, then the
value in cachekit's serialized envelope (:mod:`cachekit.serialization`).

The provider owns exactly three kinds of names in its directory, and never counts, lists or
removes any other file: entries (``<64 hex>.ckc``), temporaries being written
(``.ckc-*.tmp``) and the per-key locks of ``get_or_set`` (``.ckl-<64 hex>``); the directory
lock ``.cachekit.lock`` (see :mod:`.file_lock`) is kept by ``clear()``.

A file that is not an entry this module wrote - truncated, foreign, undecodable, or not a
regular file at all (a symlink is not followed, a FIFO not waited on) - raises
:class:`CorruptFile`, which the provider turns into a miss.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
import struct
from hashlib import sha256
from typing import NamedTuple

from ..errors import SerializationError

__all__ = [
    "ENTRY_SUFFIX",
    "INF",
    "TMP_PREFIX",
    "TMP_SUFFIX",
    "CorruptFile",
    "Entry",
    "Ident",
    "encode_entry",
    "entry_name",
    "is_entry_name",
    "is_key_lock_name",
    "is_owned",
    "key_lock_name",
    "read_entry",
]

#: magic, expires_at (epoch s, inf = never), written_ns, key length, tags length.
_HEAD = struct.Struct(">4sdQII")
_MAGIC = b"CKF\x01"
ENTRY_SUFFIX = ".ckc"
_ENTRY_NAME = re.compile(r"[0-9a-f]{64}\.ckc")
TMP_PREFIX, TMP_SUFFIX = ".ckc-", ".tmp"
_KEY_LOCK_PREFIX = ".ckl-"
_KEY_LOCK_NAME = re.compile(r"\.ckl-[0-9a-f]{64}")
INF = math.inf
# O_NOFOLLOW: a link to some other file is not this cache's entry. O_NONBLOCK: opening a FIFO
# must not wait for a writer (regular files, the only ones read, ignore it).
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK

Ident = tuple[int, int]  # (st_ino, st_mtime_ns) of a file as it was read


class Entry(NamedTuple):
    key: str
    expires_at: float
    written_ns: int
    tags: frozenset[str] | None
    payload: bytes  # b"" when only the header was read
    ident: Ident
    size: int


class CorruptFile(SerializationError):
    """A cache file the provider cannot read; never leaves the provider (it becomes a miss)."""

    def __init__(self, reason: str, ident: Ident) -> None:
        super().__init__(reason)
        self.ident = ident


def _digest(text: str) -> str:
    return sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def entry_name(key: str) -> str:
    """The file name of ``key``'s entry: the SHA-256 of the UTF-8 key, hex, plus ``.ckc``."""
    return _digest(key) + ENTRY_SUFFIX


def key_lock_name(key: str) -> str:
    """The file name of the lock ``get_or_set`` takes while it computes ``key``."""
    return _KEY_LOCK_PREFIX + _digest(key)


def is_entry_name(name: str) -> bool:
    return _ENTRY_NAME.fullmatch(name) is not None


def is_key_lock_name(name: str) -> bool:
    return _KEY_LOCK_NAME.fullmatch(name) is not None


def is_owned(name: str) -> bool:
    """Whether a directory entry is an entry file or a temporary of this provider."""
    return is_entry_name(name) or (name.startswith(TMP_PREFIX) and name.endswith(TMP_SUFFIX))


def encode_entry(
    key: str, tags: frozenset[str] | None, payload: bytes, expires_at: float, written_ns: int
) -> bytes:
    """The bytes of an entry file (header, key, tags, payload)."""
    key_bytes = key.encode("utf-8", "surrogatepass")
    tag_bytes = json.dumps(sorted(tags)).encode("ascii") if tags else b""
    header = _HEAD.pack(_MAGIC, expires_at, written_ns, len(key_bytes), len(tag_bytes))
    return b"".join((header, key_bytes, tag_bytes, payload))


def read_entry(path: str, *, header_only: bool = False) -> Entry | None:
    """The entry stored at ``path``; ``None`` if there is no file; ``CorruptFile`` if bad."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EMLINK):  # O_NOFOLLOW met a symlink
            raise
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        if not stat.S_ISLNK(st.st_mode):  # replaced since: never blame the new file
            return None
        raise CorruptFile("a symbolic link", (st.st_ino, st.st_mtime_ns)) from None
    try:
        st = os.fstat(fd)
        ident = (st.st_ino, st.st_mtime_ns)
        if not stat.S_ISREG(st.st_mode):  # a FIFO, a directory, a device...
            raise CorruptFile("not a regular file", ident)
        f = open(fd, "rb")  # noqa: SIM115 - closed by the with below
    except BaseException:
        os.close(fd)
        raise
    with f:
        head = f.read(_HEAD.size)
        if len(head) < _HEAD.size:
            raise CorruptFile("truncated header", ident)
        magic, expires_at, written_ns, key_len, tags_len = _HEAD.unpack(head)
        if magic != _MAGIC or math.isnan(expires_at):
            raise CorruptFile("not a cachekit cache file", ident)
        if _HEAD.size + key_len + tags_len > st.st_size:  # never allocate what is not there
            raise CorruptFile("truncated key or tags", ident)
        meta = f.read(key_len + tags_len)
        if len(meta) < key_len + tags_len:
            raise CorruptFile("truncated key or tags", ident)
        payload = b"" if header_only else f.read()
    try:
        key = meta[:key_len].decode("utf-8", "surrogatepass")
        tags = None
        if tags_len:
            names = json.loads(meta[key_len:])
            if not isinstance(names, list) or not all(isinstance(t, str) for t in names):
                raise ValueError("tags are not a list of str")
            tags = frozenset(names)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise CorruptFile(f"bad key or tags: {exc}", ident) from None
    return Entry(key, expires_at, written_ns, tags, payload, ident, st.st_size)
