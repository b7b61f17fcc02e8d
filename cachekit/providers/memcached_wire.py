"""The two hottest memcached exchanges, ``get`` and ``set`` of one key, spoken directly.

pymemcache stays the driver (connections, timeouts, every other command), but its general
``get``/``set`` machinery (key checks the provider has already done, a serde call, a
line-by-line reader) costs more client CPU than the round trip's own system calls. Here one
``sendall`` carries the request and, for the usual reply that fits one ``recv``, one ``recv``
brings the whole answer back, which is parsed with a couple of slices. On any error the
connection is closed, so that a half-read reply can never be taken for the next command's; the
provider's retry and circuit breaker see the same exceptions as from pymemcache (``OSError`` for
the network, ``check_line``'s for ``SERVER_ERROR``/``CLIENT_ERROR`` replies).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

__all__ = ["get_one", "set_one"]

_RECV: Final = 65536
_END: Final = b"END\r\n"
_TAIL: Final = b"\r\nEND\r\n"
_STORED: Final = b"STORED\r\n"


def _socket(client: Any) -> Any:
    if client.sock is None:
        client._connect()
    return client.sock


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
    data: bytes,
    exptime: int,
    flags: int,
    *,
    check_line: Callable[[bytes], bytes],
) -> None:
    """``set`` one key, waiting for ``STORED``."""
    sock = _socket(client)
    try:
        head = b"set %b %d %d %d\r\n" % (stored, flags, exptime, len(data))
        if len(data) < _RECV:
            sock.sendall(head + data + b"\r\n")
        else:  # a large value is cheaper sent apart than copied
            sock.sendall(head)
            sock.sendall(data)
            sock.sendall(b"\r\n")
        reply = sock.recv(_RECV)
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
