"""The hottest memcached exchanges (``get``/``set`` of one key, and of many), spoken directly.

pymemcache stays the driver (connections, timeouts, every other command), but its general
``get``/``set`` machinery (key checks the provider has already done, a serde call, a
line-by-line reader) costs more client CPU than the round trip's own system calls. Here one
``sendall`` carries the request and, for the usual reply that fits one ``recv``, one ``recv``
brings the whole answer back, which is parsed with a couple of slices. On any error the
connection is closed, so that a half-read reply can never be taken for the next command's; the
provider's retry and circuit breaker see the same exceptions as from pymemcache (``OSError`` for
the network, ``check_line``'s for ``SERVER_ERROR``/``CLIENT_ERROR`` replies).

**Timeouts in the kernel.** A Python socket with a timeout is non-blocking underneath, and
CPython calls ``poll()`` before *every* ``send``/``recv`` on it: a ``set`` costs four system
calls (poll, send, poll, recv) where a blocking socket needs two. :func:`kernel_timeouts` moves
the provider's timeout into the kernel (``SO_RCVTIMEO``/``SO_SNDTIMEO``) and makes the socket
blocking: the same bound on every wait, half the system calls. A wait that runs out then
raises ``BlockingIOError`` (an ``OSError``, like ``socket.timeout``, so it is retried and
translated the same way) instead of ``TimeoutError``. The bound is per system call, where
Python's ``sendall`` bounds a whole send: a server trickling in a large request can stretch it.

**Replies to ``set_many``.** Nearly always every item is ``STORED``; the reply is then a known
string, so each ``recv`` is checked with one comparison against it rather than line by line,
and only a reply that differs is parsed per line (``_set_replies``).
"""

from __future__ import annotations

import _socket as _c_socket
import math
import operator
import socket
import struct
import sys
from collections.abc import Callable, Iterable
from typing import Any, Final

__all__ = ["Payload", "get_many", "get_one", "kernel_timeouts", "set_many", "set_one"]

#: A value to store as two parts sent back to back (``Serializer.dumps_parts``): the header
#: and the body, so that a large body is never copied behind its header before the send.
Payload = tuple[bytes, bytes]

_BODY: Final = operator.itemgetter(1)
_RECV: Final = 65536
_REPLY: Final = 4096  # status replies are a few bytes: no 64 KiB buffer to allocate per call
#: Gathering parts with ``sendmsg`` instead of joining them pays off for a joined size of about
#: 16 KiB for one ``set`` (below it, CPython's per-part buffer handling costs more than the copy:
#: 10 KB sets took ~0.4 us more client CPU gathered), and from ~4 KiB per item for ``set_many``
#: (where the join copies the whole batch: 100 x 10 KB sets took ~45 us less gathered).
_GATHER_ONE: Final = 16384
_GATHER_FROM: Final = 4096
_END: Final = b"END\r\n"
_TAIL: Final = b"\r\nEND\r\n"
_STORED: Final = b"STORED\r\n"
_SERVER_ERROR: Final = b"SERVER_ERROR "


#: ``struct timeval`` as 64-bit Linux lays it out: two C longs (seconds, microseconds). 32-bit
#: builds may use a 64-bit ``time_t`` with ``SO_RCVTIMEO_NEW``; they keep Python's timeouts.
_TIMEVAL: Final = struct.Struct("@ll")
_KERNEL_TIMEOUTS: Final = sys.platform == "linux" and _TIMEVAL.size == 16


def kernel_timeouts(sock: socket.socket) -> None:
    """Give the kernel the socket's timeout and make the socket blocking (see the module
    docstring). Elsewhere than 64-bit Linux, and for sockets without a positive timeout or that
    are not the standard library's own (TLS; gevent's or eventlet's, which stay non-blocking
    underneath and wait on their hub for the Python timeout), nothing changes."""
    timeout = sock.gettimeout()
    if (
        not _KERNEL_TIMEOUTS
        or type(sock) is not socket.socket
        or not isinstance(sock, _c_socket.socket)  # socket.socket monkey-patched (gevent)
        or not timeout
        or timeout <= 0
    ):
        return
    # Rounded up and at least 1 us: a zero timeval would mean "wait forever".
    seconds, micros = divmod(max(math.ceil(timeout * 1_000_000), 1), 1_000_000)
    try:
        timeval = _TIMEVAL.pack(seconds, micros)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    except (OSError, struct.error):  # a kernel that refuses: Python's timeout still holds
        return
    sock.settimeout(None)


def _socket(client: Any) -> Any:
    if client.sock is None:
        client._connect()
    return client.sock


_IOV_MAX: Final = 1024  # the smallest IOV_MAX of the platforms Python runs on


def _send_parts(sock: Any, parts: list[bytes]) -> None:
    """``sendall`` of the parts joined, without joining them: ``sendmsg`` gathers them, and a
    partial write (a full socket buffer) resumes where it stopped."""
    first = 0
    while first < len(parts):
        sent = sock.sendmsg(parts[first : first + _IOV_MAX])
        while first < len(parts) and sent >= len(parts[first]):
            sent -= len(parts[first])
            first += 1
        if sent:
            parts[first] = memoryview(parts[first])[sent:]  # type: ignore[call-overload]


def _recv_more(sock: Any, chunks: list[bytes], have: int, need: int) -> int:
    while have < need:
        chunk = sock.recv(max(need - have, _RECV))
        if not chunk:
            raise ConnectionError("memcached closed the connection mid-reply")
        chunks.append(chunk)
        have += len(chunk)
    return have


def get_one(
    client: Any,
    stored: bytes,
    check_line: Callable[[bytes], bytes],
    deserialize: Callable[[bytes, bytes, int], bytes],
) -> bytes | None:
    """One key's value (through ``deserialize`` when it has flags); ``None`` on a miss."""
    sock = _socket(client)
    try:
        sock.sendall(b"get " + stored + b"\r\n")
        buf: bytes = sock.recv(_RECV)
        if buf == _END:
            return None
        end = buf.find(b"\r\n")
        while end < 0:
            more = sock.recv(_RECV)
            if not more:
                raise ConnectionError("memcached closed the connection mid-reply")
            buf += more
            end = buf.find(b"\r\n")
        header = buf[:end]
        if header == b"END":  # a miss whose reply came in pieces
            if end + 2 != len(buf):
                raise ConnectionError("memcached sent bytes after END")
            return None
        if not header.startswith(b"VALUE "):
            check_line(header)  # SERVER_ERROR / CLIENT_ERROR raise here
            raise ConnectionError(f"unexpected memcached reply {header[:40]!r}")
        _, _, flags, size = header.split(b" ", 4)[:4]
        start = end + 2
        stop = start + int(size)
        need = stop + len(_TAIL)
        if len(buf) < need:
            chunks = [buf]
            _recv_more(sock, chunks, len(buf), need)
            buf = b"".join(chunks)
        if buf[stop:need] != _TAIL or len(buf) != need:
            raise ConnectionError("malformed memcached reply to get")
        if flags == b"0":
            return buf[start:stop]
        return deserialize(stored, buf[start:stop], int(flags))
    except BaseException:
        client.close()
        raise


def set_one(
    client: Any,
    stored: bytes,
    data: Payload,
    exptime: int,
    flags: int,
    *,
    check_line: Callable[[bytes], bytes],
) -> None:
    """``set`` one key, waiting for ``STORED``."""
    sock = _socket(client)
    head, body = data
    try:
        size = len(head) + len(body)
        if size < _GATHER_ONE:  # one copy of the body, into the request
            sock.sendall(
                b"set %b %d %d %d\r\n%b%b\r\n" % (stored, flags, exptime, size, head, body)
            )
        else:  # gathered by the kernel rather than copied here
            line = b"set %b %d %d %d\r\n%b" % (stored, flags, exptime, size, head)
            _send_parts(sock, [line, body, b"\r\n"])
        reply = sock.recv(_REPLY)
        while not reply.endswith(b"\r\n"):
            more = sock.recv(_RECV)
            if not more:
                raise ConnectionError("memcached closed the connection mid-reply")
            reply += more
        if reply != _STORED:
            check_line(reply.rstrip(b"\r\n"))
            raise ConnectionError(f"unexpected memcached reply {reply[:40]!r}")
    except BaseException:
        client.close()
        raise


def _more(sock: Any, buf: bytes | bytearray) -> bytearray:
    """``buf`` with the next chunk appended (a bytearray, so that appending stays linear)."""
    chunk = sock.recv(_RECV)
    if not chunk:
        raise ConnectionError("memcached closed the connection mid-reply")
    grown = buf if isinstance(buf, bytearray) else bytearray(buf)
    grown += chunk
    return grown


def get_many(
    client: Any,
    stored: list[bytes],
    check_line: Callable[[bytes], bytes],
    deserialize: Callable[[bytes, bytes, int], bytes],
    header: bytes | None = None,
) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """``({key: body}, {key: value})`` of the keys present, from one ``get k1 k2 ...``: the
    values that begin with ``header`` (stored with flags 0) without it, and the others whole.

    The reply is parsed as it arrives (value sizes say where each value ends, so a value
    holding ``END`` is never mistaken for the end); the values are copied out once, at the end,
    a header left behind rather than cut off by a second copy.
    """
    sock = _socket(client)
    try:
        sock.sendall(b"get " + b" ".join(stored) + b"\r\n")
        buf: bytes | bytearray = sock.recv(_RECV)
        if buf == _END:
            return {}, {}
        spans: list[tuple[bytes, bytes, int, int]] = []
        pos = 0
        while True:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                buf = _more(sock, buf)
                continue
            line = bytes(buf[pos:end])
            if line == b"END":
                if end + 2 != len(buf):
                    raise ConnectionError("memcached sent bytes after END")
                break
            if not line.startswith(b"VALUE "):
                check_line(line)
                raise ConnectionError(f"unexpected memcached reply {line[:40]!r}")
            parts = line.split(b" ")
            start = end + 2
            stop = start + int(parts[3])
            while len(buf) < stop + 2:
                buf = _more(sock, buf)
            if buf[stop : stop + 2] != b"\r\n":
                raise ConnectionError("malformed memcached reply to get")
            spans.append((parts[1], parts[2], start, stop))
            pos = stop + 2
        view = memoryview(buf)
        try:
            bodies: dict[bytes, bytes] = {}
            others: dict[bytes, bytes] = {}
            for key, flags, start, stop in spans:
                if flags != b"0":
                    others[key] = deserialize(key, bytes(view[start:stop]), int(flags))
                elif header is not None and buf.startswith(header, start, stop):
                    bodies[key] = bytes(view[start + len(header) : stop])
                else:
                    others[key] = bytes(view[start:stop])
            return bodies, others
        finally:
            view.release()
    except BaseException:
        client.close()
        raise


def set_many(
    client: Any,
    values: dict[bytes, Payload],
    exptime: int,
    flags: int,
    *,
    check_line: Callable[[bytes], bytes],
) -> list[bytes]:
    """``set`` every item in one send; returns the keys the server did not store.

    An item the server refuses as too large (``SERVER_ERROR object too large for cache``: its
    ``-I`` is below the provider's ``max_item_size``) is one of those keys: memcached swallows
    its value and goes on with the next command, so the others' replies still follow.
    """
    if not values:
        return []
    sock = _socket(client)
    try:
        if sum(map(len, map(_BODY, values.values()))) < _GATHER_FROM * len(values):
            sock.sendall(
                b"".join(
                    [
                        b"set %b %d %d %d\r\n%b%b\r\n"
                        % (key, flags, exptime, len(head) + len(body), head, body)
                        for key, (head, body) in values.items()
                    ]
                )
            )
        else:  # large values: gathered by the kernel rather than copied twice here
            parts: list[bytes] = []
            for key, (head, body) in values.items():
                parts.append(
                    b"set %b %d %d %d\r\n%b" % (key, flags, exptime, len(head) + len(body), head)
                )
                parts.append(body)
                parts.append(b"\r\n")
            _send_parts(sock, parts)
        # Usually every reply is STORED: the whole answer is then one known string, and one
        # comparison per recv stands for a parse of each of its lines.
        all_stored = _STORED * len(values)
        buf: bytes | bytearray = sock.recv(min(len(all_stored), _RECV))
        while all_stored.startswith(buf):
            if len(buf) == len(all_stored):
                return []
            buf = _more(sock, buf)
        return _set_replies(sock, buf, values, check_line)
    except BaseException:
        client.close()
        raise


def _set_replies(
    sock: Any, buf: bytes | bytearray, keys: Iterable[bytes], check_line: Callable[[bytes], bytes]
) -> list[bytes]:
    """The keys refused, from one reply line per key (``buf`` holds the first of them)."""
    refused: list[bytes] = []
    pos = 0
    for key in keys:
        end = buf.find(b"\r\n", pos)
        while end < 0:
            buf = _more(sock, buf)
            end = buf.find(b"\r\n", pos)
        line = bytes(buf[pos:end])
        pos = end + 2
        if line == b"STORED":
            continue
        if line == b"NOT_STORED" or (line.startswith(_SERVER_ERROR) and b"too large" in line):
            refused.append(key)
        else:
            check_line(line)
            raise ConnectionError(f"unexpected memcached reply {line[:40]!r}")
    if pos != len(buf):
        raise ConnectionError("memcached sent more replies than commands")
    return refused
