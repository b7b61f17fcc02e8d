"""Commands sent on a pooled redis-py connection, packed by hand.

redis-py's ``execute_command`` is general: per-argument type checks while packing, response
callbacks, option filtering. For the provider's hot commands that generality costs more client
CPU than the round trip's own system calls (a raw ``MGET`` of 100 keys spends a third of its
client CPU checking argument types). Here hiredis packs the command (redis-py's own packer when
hiredis is missing), the connection sends it and reads the reply, with redis-py's connection,
pool, parser and retry policy doing the rest. Replies are the parser's (bytes, ints, lists,
``None`` for these commands), what they return through redis-py before response callbacks.

**Large values are read here too.** Through hiredis, every byte of a value is copied twice in
the client (redis-py feeds what it receives into the reader's buffer, the reader copies it into
the reply's ``bytes``) and the provider copied it a third time, to cut the 4-byte envelope
header off an unsigned ``bytes`` payload. For replies of large values (``MGET``/``GET``:
:func:`mget`, :func:`get`) this module reads the socket itself into a buffer of its own and
copies each value out once, without its header: for 100 values of 10 KB that is 1 MB copied
instead of 3 (callgrind counts about an instruction per byte copied; ``docs/redis.md``). Small
values are left to hiredis, which parses them for less than Python can. The caller says which
to expect (the size of the values it last read, a hint that costs a wrong guess one call's
speed, never its result); when it expected large values the reply's first value decides
(:data:`READ_FROM`): if it is small, what was read is fed to hiredis, whose reply redis-py then
reads as usual. A reply that does not begin as an array of bulk strings and nulls (an error
reply, a RESP3 push message) goes the same way, so error replies keep redis-py's exceptions and
connection handling; a failure while reading here disconnects the connection, as redis-py does,
and raises what its hiredis parser and ``Connection.read_response`` raise.

**Health checks.** A command sent here honours the connection's ``health_check_interval`` as
redis-py's own commands do: ``send_packed_command`` runs ``check_health()`` (a ``PING`` on a
connection idle for longer than the interval) before the command, and a reply read here sets
the next check's time as ``read_response`` does. With the interval 0 (the default) neither
costs anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, cast

import redis.exceptions

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
_Reader: type[Any] | None
try:
    from hiredis import Reader as _Reader
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis comes with the 'redis' extra
    _hiredis_pack = _Reader = None
try:  # what redis-py's hiredis parser raises on: read failures must look the same
    from redis._parsers.socket import NONBLOCKING_EXCEPTIONS as _NONBLOCKING
    from redis._parsers.socket import SERVER_CLOSED_CONNECTION_ERROR as _CLOSED
except ImportError:  # pragma: no cover - another redis-py layout: hiredis reads every reply
    _Reader = None
    _NONBLOCKING, _CLOSED = (), "Connection closed by server."

__all__ = [
    "BUFFER_SIZE",
    "KEEP_BUFFERS",
    "ONE_SEND",
    "READ_FROM",
    "Values",
    "execute",
    "get",
    "large",
    "mget",
    "send",
]

#: Writes up to this many bytes go out in one send (and run back to back on the server).
ONE_SEND: Final = 65536
#: A reply whose first value has at least this many bytes is read here, not by hiredis.
#: Below it hiredis's two copies cost less than parsing in Python (measured with callgrind).
READ_FROM: Final = 2048
#: The receive buffer a read here takes (a value larger than it is read into a buffer of its
#: own size, for that reply only).
BUFFER_SIZE: Final = 262144
#: Buffers kept between reads, shared by every thread: a read takes one (or allocates one when
#: none is free) and gives it back. Kept per thread instead, they would number the threads, and
#: under gevent the greenlets, that ever read a large value; here they number at most the reads
#: in flight at once, and only KEEP_BUFFERS (2 MiB) of them stay once those are done.
KEEP_BUFFERS: Final = 8

_CRLF: Final = b"\r\n"
_free_buffers: list[bytearray] = []

#: What :func:`mget` returns: the values in key order (``None`` for a missing key), and the
#: positions of those that still carry their envelope (``None``: all of them do).
Values = tuple[list[bytes | None], list[int] | None]


def execute(pool: Any, args: tuple[Any, ...]) -> Any:
    """One command and its reply; retried like redis-py's on a connection error."""
    conn = pool.get_connection()
    packed = [_hiredis_pack(args)] if _hiredis_pack is not None else conn.pack_command(*args)

    def run() -> Any:
        conn.send_packed_command(packed, check_health=bool(conn.health_check_interval))
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
        conn.send_packed_command(packed, check_health=bool(conn.health_check_interval))
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


def mget(pool: Any, args: tuple[Any, ...], header: bytes | None, direct: bool) -> Values:
    """``MGET``: its values, each that begins with ``header`` without it (see :data:`Values`).

    ``direct``: the values are expected to be large (see :func:`large`), so the reply is read
    here unless its first value is small after all; otherwise hiredis reads it and nothing is
    stripped. ``header`` ``None`` strips nothing.
    """
    conn = pool.get_connection()
    packed = [_hiredis_pack(args)] if _hiredis_pack is not None else conn.pack_command(*args)

    def run() -> Values:
        conn.send_packed_command(packed, check_health=bool(conn.health_check_interval))
        if direct:
            return _read_values(conn, header, array=True)
        return conn.read_response(), None

    try:
        return conn.retry.call_with_retry(run, lambda _: conn.disconnect())  # type: ignore[no-any-return]
    finally:
        pool.release(conn)


def get(pool: Any, args: tuple[Any, ...], header: bytes | None) -> tuple[bytes | None, bool]:
    """``GET`` of a value expected to be large: the value (``None``: missing) and whether it
    still carries its envelope (it does unless it begins with ``header`` and is read here)."""
    conn = pool.get_connection()
    packed = [_hiredis_pack(args)] if _hiredis_pack is not None else conn.pack_command(*args)

    def run() -> Values:
        conn.send_packed_command(packed, check_health=bool(conn.health_check_interval))
        return _read_values(conn, header, array=False)

    try:
        value, enveloped = conn.retry.call_with_retry(run, lambda _: conn.disconnect())
    finally:
        pool.release(conn)
    if enveloped is None:  # read by hiredis: the reply itself
        return value, True
    return value[0], bool(enveloped)


def large(values: list[bytes | None]) -> bool:
    """Whether the first value present is one that :func:`mget` should read itself."""
    for value in values:
        if value is not None:
            return len(value) >= READ_FROM
    return False


def _read_values(conn: Any, header: bytes | None, *, array: bool) -> Values:
    """The reply to ``MGET`` (``array``) or ``GET``, read here or by hiredis.

    The command is sent: anything raised before the reply is read disconnects, so a pooled
    connection never goes back with a reply waiting on it."""
    try:
        reader: Any = getattr(getattr(conn, "_parser", None), "_reader", None)
        sock = getattr(conn, "_sock", None)
        fallback = (
            _Reader is None or type(reader) is not _Reader or sock is None or reader.has_data()
        )
    except BaseException:
        conn.disconnect()
        raise
    if fallback:
        return conn.read_response(), None  # what hiredis holds (a push message) comes first
    # list.pop and list.append are atomic: no two reads ever hold the same buffer, whichever
    # threads (or a finalizer run during an allocation in this one) they run in.
    try:
        buf = _free_buffers.pop()
    except IndexError:
        buf = bytearray(BUFFER_SIZE)
    try:
        values = _parse(conn, sock, reader, buf, header=header, array=array)
    finally:
        if len(_free_buffers) < KEEP_BUFFERS:
            _free_buffers.append(buf)
    if values is None:  # small values: fed to hiredis, read the usual way
        return conn.read_response(), None
    if conn.health_check_interval:  # as read_response does
        conn.next_health_check = time.monotonic() + conn.health_check_interval
    return values


def _parse(
    conn: Any, sock: Any, reader: Any, buf: bytearray, *, header: bytes | None, array: bool
) -> Values | None:
    """Read and parse the reply, or (small values, anything unexpected) feed what was read to
    hiredis and return ``None``. Failures disconnect, with the exceptions of redis-py's
    hiredis parser and ``Connection.read_response``."""
    view = memoryview(buf)
    try:
        filled = _recv(sock, view)
        try:
            # MGET: "*N\r\n", then N values: "$L\r\n<L bytes>\r\n", or a null: "_\r\n" (RESP3,
            # redis-py's default) or "$-1\r\n" (RESP2). GET: one value.
            pos, count = 0, 1
            if array:
                eol = buf.find(_CRLF, 0, filled)
                if buf[0] != 42 or eol < 0:  # not "*": an error reply, say
                    count = 0
                else:
                    count = int(buf[1:eol])
                    pos = eol + 2
            # The first value present decides who parses the reply.
            size, line, index = -1, pos, 0
            while index < count:
                eol = buf.find(_CRLF, line, filled)
                if eol < 0:
                    break
                if buf[line] == 36:
                    size = int(buf[line + 1 : eol])
                    if size >= 0:
                        break
                elif buf[line] != 95 or eol != line + 1:
                    break
                line, index = eol + 2, index + 1
        except ValueError:  # not a number where one belongs: hiredis says what is wrong
            size = -1
        if size < READ_FROM:
            reader.feed(buf, 0, filled)
            return None
        values: list[bytes | None] = []
        enveloped: list[int] = []
        append = values.append
        skip = len(header) if header is not None else 0
        for index in range(count):
            eol = buf.find(_CRLF, pos, filled)
            while eol < 0:
                view, pos, filled = _more(sock, view, pos, filled, filled - pos + 1)
                buf = cast(bytearray, view.obj)
                eol = buf.find(_CRLF, pos, filled)
            if buf[pos] != 36:
                if buf[pos] == 95 and eol == pos + 1:
                    append(None)
                    pos = eol + 2
                    continue
                raise redis.exceptions.InvalidResponse(
                    f'Protocol error, got "{chr(buf[pos])}" as reply type byte'
                )
            try:
                size = int(buf[pos + 1 : eol])
            except ValueError:
                raise redis.exceptions.InvalidResponse("Bad bulk string length") from None
            if size < 0:
                append(None)
                pos = eol + 2
                continue
            start = eol + 2
            end = start + size
            if end + 2 > filled:
                view, start, filled = _more(sock, view, start, filled, size + 2)
                buf = cast(bytearray, view.obj)
                end = start + size
            if buf[end : end + 2] != _CRLF:  # hiredis refuses a mis-framed reply too
                raise redis.exceptions.InvalidResponse("Protocol error: bulk string not closed")
            if header is not None and buf.startswith(header, start, end):
                append(view[start + skip : end].tobytes())
            else:
                enveloped.append(index)
                append(view[start:end].tobytes())
            pos = end + 2
        if pos < filled:  # nothing follows a reply, but what did is the parser's
            reader.feed(buf, pos, filled - pos)
        return values, enveloped
    except OSError as exc:  # a socket error, as Connection.read_response words it
        conn.disconnect()
        raise redis.exceptions.ConnectionError(
            f"Error while reading from {conn._host_error()} : {exc.args}"
        ) from exc
    except BaseException:
        conn.disconnect()
        raise
    finally:
        view.release()


def _recv(sock: Any, view: memoryview) -> int:
    """``recv_into``, failing as redis-py's hiredis parser does."""
    try:
        received: int = sock.recv_into(view)
    except TimeoutError:  # socket.timeout
        raise redis.exceptions.TimeoutError("Timeout reading from socket") from None
    except _NONBLOCKING as exc:
        raise redis.exceptions.ConnectionError(
            f"Error while reading from socket: {exc.args}"
        ) from None
    if received == 0:
        raise redis.exceptions.ConnectionError(_CLOSED)
    return received


def _more(
    sock: Any, view: memoryview, start: int, filled: int, need: int
) -> tuple[memoryview, int, int]:
    """Read until the buffer holds ``need`` bytes from ``start``: the partial item there moves
    to the front of the buffer if they would not fit after it, to a larger buffer if they would
    not fit in it at all. Returns the (buffer's) view, where the item now starts and how much of
    the buffer is read."""
    have = filled - start
    if start + need > len(view):
        if need > len(view):
            larger = bytearray(need)
            larger[:have] = view[start:filled]
            view.release()
            view = memoryview(larger)
        elif have:
            # bytearray slice assignment copies with memcpy: overlapping ranges need a copy.
            buf = cast(bytearray, view.obj)
            buf[:have] = view[start:filled] if have <= start else buf[start:filled]
        start, filled = 0, have
    while filled - start < need:
        filled += _recv(sock, view[filled:])
    return view, start, filled
