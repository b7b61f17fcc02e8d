"""Commands sent on a pooled redis-py connection, packed by hand.

redis-py's ``execute_command`` is general: per-argument type checks while packing, response
callbacks, option filtering. For the provider's hot commands that generality costs more client
CPU than the round trip's own system calls (a raw ``MGET`` of 100 keys spends a third of its
client CPU checking argument types). Here hiredis packs the command (redis-py's own packer when
hiredis is missing), the connection sends it and reads the reply, with redis-py's connection,
pool, parser and retry policy doing the rest. Replies are the parser's (bytes, ints, lists,
``None`` for these commands), what they return through redis-py before response callbacks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import redis.exceptions

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis comes with the 'redis' extra
    _hiredis_pack = None

__all__ = ["ONE_SEND", "execute", "send"]

#: Writes up to this many bytes go out in one send (and run back to back on the server).
ONE_SEND: Final = 65536


def execute(pool: Any, args: tuple[Any, ...]) -> Any:
    """One command and its reply; retried like redis-py's on a connection error."""
    conn = pool.get_connection()
    packed = [_hiredis_pack(args)] if _hiredis_pack is not None else conn.pack_command(*args)

    def run() -> Any:
        conn.send_packed_command(packed, check_health=False)
        return conn.read_response()

    try:
        return conn.retry.call_with_retry(run, lambda _: conn.disconnect())
    finally:
        pool.release(conn)


def _small(commands: list[tuple[Any, ...]]) -> bool:
    """Whether the values are small enough to copy into one packed buffer (hiredis copies)."""
    size = 0
    for command in commands:
        for arg in command:
            if type(arg) is bytes:
                size += len(arg)
    return size < ONE_SEND


def send(pool: Any, commands: list[tuple[Any, ...]], *, atomic: bool) -> list[Any]:
    """Several commands in one round trip; ``atomic`` wraps them in ``MULTI``/``EXEC``.

    Returns their replies (EXEC's for a transaction), raising the first error.
    """
    conn = pool.get_connection()
    if atomic:
        commands = [("MULTI",), *commands, ("EXEC",)]
    # pack_commands leaves large values apart and each becomes its own sendall, which reaches
    # the server as its own segment (a wake-up and a partial parse each): join a small
    # batch into one send; a large one is cheaper sent as is than copied.
    if _hiredis_pack is not None and _small(commands):
        packed = [b"".join([_hiredis_pack(command) for command in commands])]
    else:
        packed = conn.pack_commands(commands)
        if len(packed) > 1 and sum(map(len, packed)) < ONE_SEND:
            packed = [b"".join(packed)]

    def run() -> list[Any]:
        conn.send_packed_command(packed)
        error: Exception | None = None
        replies: list[Any] = []
        for _ in commands:  # with MULTI: OK, QUEUED per command (or an error), then EXEC's
            try:
                replies.append(conn.read_response())
            except redis.exceptions.ResponseError as exc:
                error = error or exc
        if error is not None:  # EXECABORT included: the transaction did not run
            raise error
        if atomic:
            replies = replies[-1]
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies

    try:
        return conn.retry.call_with_retry(run, lambda _: conn.disconnect())  # type: ignore[no-any-return]
    finally:
        pool.release(conn)
