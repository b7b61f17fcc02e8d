"""Real ``redis-server`` and ``memcached`` processes for tests, on free loopback ports.

Providers are tested against the real servers, not fakes: protocol corner cases (expiry
rounding, item-size limits, reconnection after an outage) are exactly what fakes get wrong.
Each server runs as a child process bound to 127.0.0.1 on a port picked by binding a socket
to port 0 first (neither binary accepts ``--port 0``); if another process takes the port in
between, the start is retried on a new one. A server is only "ready" after a protocol round
trip *and* after it reports our child's pid, so a stranger on the port cannot be mistaken for
it. The well-known ports (6379, 11211) are refused: a system server may be running there.

This module imports without pytest (third-party providers may drive the servers from any test
runner); :func:`require_binary` imports pytest lazily to skip, or fail when
``CACHEKIT_REQUIRE_SERVERS=1`` (CI), if a binary is missing.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Final, Self
from urllib.parse import quote

from cachekit.errors import CacheError

__all__ = [
    "BINARIES",
    "MISSING_SERVER_MARK",
    "BinaryNotFound",
    "MemcachedServer",
    "RedisCluster",
    "RedisServer",
    "ServerProcess",
    "ServerStartError",
    "find_binary",
    "require_binary",
]

HOST: Final = "127.0.0.1"
#: Ports a system-wide server may own; never used, never touched.
RESERVED_PORTS: Final = frozenset({6379, 11211})
#: Prefix of every skip reason for a missing binary, so a terminal summary can find them.
MISSING_SERVER_MARK: Final = "cachekit: test server binary not found"
REQUIRE_ENV: Final = "CACHEKIT_REQUIRE_SERVERS"
#: Starts tried before giving up on binding a port (a lost race is retried on a new port).
_START_ATTEMPTS: Final = 3


class _Binary:
    __slots__ = ("apt_package", "env_var", "name")

    def __init__(self, name: str, env_var: str, apt_package: str) -> None:
        self.name = name
        self.env_var = env_var
        self.apt_package = apt_package


#: The binaries this module knows: executable name -> env override and Debian package.
BINARIES: Final[Mapping[str, _Binary]] = {
    "redis-server": _Binary("redis-server", "CACHEKIT_REDIS_SERVER", "redis-server"),
    "memcached": _Binary("memcached", "CACHEKIT_MEMCACHED", "memcached"),
}


class ServerStartError(CacheError):
    """A server binary was found but the server did not come up; the message has its log."""


class BinaryNotFound(ServerStartError):
    """The server binary is not installed (or the env override points nowhere)."""


# -- binary discovery ---------------------------------------------------------------------------


def find_binary(name: str) -> str | None:
    """Path of the ``redis-server``/``memcached`` binary, or ``None`` if it is not available.

    The env override (``CACHEKIT_REDIS_SERVER``, ``CACHEKIT_MEMCACHED``) wins over ``PATH``; an
    override that is not an executable file counts as missing rather than falling back, so a
    typo in CI does not silently test another binary.
    """
    binary = BINARIES[name]
    override = os.environ.get(binary.env_var)
    if override:
        return override if os.path.isfile(override) and os.access(override, os.X_OK) else None
    return shutil.which(name)


def _missing_message(name: str) -> str:
    binary = BINARIES[name]
    override = os.environ.get(binary.env_var)
    where = (
        f"{binary.env_var}={override!r} is not an executable file"
        if override
        else f"{name!r} is not on PATH"
    )
    return (
        f"{MISSING_SERVER_MARK}: {name} ({where}); install it with "
        f"'apt-get install {binary.apt_package}' or point {binary.env_var} at the binary"
    )


def require_binary(name: str) -> str:
    """Return the binary's path, or skip the calling test (fail it under CI) if it is missing.

    Skipping keeps a laptop without servers usable; ``CACHEKIT_REQUIRE_SERVERS=1`` turns the
    skip into a failure so CI can never go green by testing nothing.
    """
    path = find_binary(name)
    if path is not None:
        return path
    import pytest

    message = _missing_message(name)
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        pytest.fail(f"{message} [{REQUIRE_ENV} is set, so this is an error]", pytrace=False)
    pytest.skip(message)


# -- processes --------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (callers must handle losing the race)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


class _PortTaken(Exception):
    """Internal: the child could not bind its port (lost the race for it)."""


_live_servers: weakref.WeakSet[ServerProcess] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    # A test run interrupted before its fixtures' teardown must not leave servers behind.
    for server in list(_live_servers):
        server.close()


class ServerProcess:
    """Common life cycle of a server child process; see :class:`RedisServer`.

    ``stop()`` and ``kill()`` keep the data directory, so ``start()``/``restart()`` afterwards
    bring the server back on the same port with whatever it persisted; ``close()`` (and leaving
    the ``with`` block) stops it and removes the directory.
    """

    binary_name: ClassVar[str]
    scheme: ClassVar[str]
    #: Lines/phrases in the log showing the listen socket could not be bound.
    _addr_in_use: ClassVar[tuple[str, ...]] = ("Address already in use",)

    def __init__(
        self,
        *,
        binary: str | None = None,
        port: int | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        if port is not None and (port in RESERVED_PORTS or not 0 < port < 65536):
            raise ValueError(f"port {port} is reserved for system servers or out of range")
        if binary is None:
            binary = find_binary(self.binary_name)
            if binary is None:
                raise BinaryNotFound(_missing_message(self.binary_name))
        self.binary = binary
        self.host = HOST
        self._fixed_port = port
        self._port: int | None = port
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._log_offset = 0  # where the current process's output starts in the log
        self._lock = threading.Lock()

    # -- what subclasses provide -------------------------------------------------------------

    def _argv(self, port: int, data_dir: Path) -> list[str]:
        raise NotImplementedError

    def _probe(self, sock: socket.socket) -> int | None:
        """One readiness round trip: the server's pid, or ``None`` if it is not ready yet."""
        raise NotImplementedError

    # -- properties ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise ServerStartError(f"{type(self).__name__} has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def data_dir(self) -> Path | None:
        """Working directory of the server (Redis writes its AOF/RDB files there)."""
        return self._dir

    @property
    def log_path(self) -> Path | None:
        return self._dir / "server.log" if self._dir is not None else None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the current (or last) server process wrote to stdout/stderr."""
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        with open(path, "rb") as log:
            log.seek(self._log_offset)
            text = log.read().decode(errors="replace").splitlines()[-lines:]
        return "\n".join(text) or "(empty log)"

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server and wait until it answers; a no-op if it is already running."""
        with self._lock:
            if self.running:
                return self
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix=f"cachekit-{self.binary_name}-"))
            # A port of our own choosing may be lost to a race: retry on a fresh one. A fixed
            # port (given, or kept for a restart) is retried briefly, in case whoever holds it
            # lets go (a previous server of ours still shutting down).
            for _attempt in range(_START_ATTEMPTS):
                port = self._port if self._port is not None else free_port()
                try:
                    self._spawn(port)
                except _PortTaken:
                    if self._port is None:
                        continue
                    time.sleep(0.2)
                    continue
                self._port = port
                _live_servers.add(self)
                return self
            raise ServerStartError(
                f"{self.binary_name} could not bind a port after {_START_ATTEMPTS} attempts "
                f"(last: {port}); log:\n{self.log_tail()}"
            )

    def _spawn(self, port: int) -> None:
        assert self._dir is not None
        log_path = self._dir / "server.log"
        argv = self._argv(port, self._dir)
        with open(log_path, "ab") as log:
            log.write(f"--- {' '.join(argv)}\n".encode())
            log.flush()
            self._log_offset = log.tell()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
            )
        self._proc = proc
        try:
            self._wait_ready(proc, port)
        except BaseException:
            self._terminate(proc, signal.SIGKILL)
            self._proc = None
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no answer yet"
        while True:
            if proc.poll() is not None:
                tail = self.log_tail()
                if any(marker in tail for marker in self._addr_in_use):
                    raise _PortTaken(port)
                raise ServerStartError(
                    f"{self.binary_name} exited with status {proc.returncode} on port {port}; "
                    f"log:\n{tail}"
                )
            try:
                # A short timeout: a stranger holding the port may accept and never answer.
                with socket.create_connection((self.host, port), timeout=0.25) as sock:
                    pid = self._probe(sock)
            except OSError as exc:
                last_error = repr(exc)
                pid = None
            if pid is not None:
                if pid == proc.pid:
                    return
                # A stranger answers on our port: ours is about to fail to bind (see above).
                last_error = f"port {port} answered with pid {pid}, not ours ({proc.pid})"
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"{self.binary_name} on port {port} not ready after "
                    f"{self.startup_timeout:.1f}s ({last_error}); log:\n{self.log_tail()}"
                )
            time.sleep(0.02)

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes], sig: int, timeout: float = 10.0) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        else:
            proc.wait()  # reap

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down gracefully (SIGTERM, SIGKILL after ``timeout``); keeps port and data."""
        with self._lock:
            if self._proc is not None:
                self._terminate(self._proc, signal.SIGTERM, timeout)
                self._proc = None
            _live_servers.discard(self)

    def kill(self) -> None:
        """SIGKILL the server, as an outage would; keeps port and data for :meth:`restart`."""
        with self._lock:
            if self._proc is not None:
                self._terminate(self._proc, signal.SIGKILL)
                self._proc = None
            _live_servers.discard(self)

    @contextlib.contextmanager
    def stalled(self, timeout: float = 10.0) -> Iterator[None]:
        """Freeze the server (SIGSTOP) for the block, as a hung host would: connections are
        accepted by the kernel and never answered. Entered only once every thread of the
        process is stopped: ``kill()`` returns before that, and on a loaded machine a request
        sent right after it was still answered. SIGCONT on exit."""
        pid = self.pid
        if pid is None:
            raise ServerStartError(f"{self!r} is not running")
        os.kill(pid, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + timeout
            while not _all_threads_stopped(pid):
                if time.monotonic() > deadline:
                    raise ServerStartError(f"{self!r} did not stop within {timeout} s")
                time.sleep(0.001)
            yield
        finally:
            if self.pid == pid:  # not killed or restarted in the block: the pid is still ours
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def restart(self) -> Self:
        """Stop (if still running) and start again on the same port."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Kill the server and delete its data directory.

        SIGKILL rather than a graceful stop: whatever a graceful shutdown would flush is deleted
        right after, and memcached takes a full second to act on SIGTERM.
        """
        self.kill()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._port = self._fixed_port

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"port={self._port} pid={self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {state}>"


def _read_until(sock: socket.socket, terminator: bytes, limit: int = 1 << 20) -> bytes:
    data = b""
    while not data.endswith(terminator):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("server closed the connection")
        data += chunk
        if len(data) > limit:
            raise ConnectionError("reply too long")
    return data


def _all_threads_stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is in the stopped state (Linux ``/proc``)."""
    tasks = Path(f"/proc/{pid}/task")
    for task in tasks.iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:  # the thread exited
            continue
        if stat[stat.rindex(")") + 2] != "T":  # the state follows "(comm) "
            return False
    return True


class RedisServer(ServerProcess):
    """A throw-away ``redis-server``: no RDB snapshots, no AOF, data dir in a temp directory.

    ``config`` adds or overrides ``redis.conf`` directives passed as ``--name value``
    (``{"appendonly": "yes"}`` for persistence tests, ``{"maxmemory": "10mb"}``); a value of
    ``None`` drops one of the defaults. ``requirepass`` is honoured by the readiness probe and
    put into :attr:`url`.
    """

    binary_name = "redis-server"
    scheme = "redis"
    _MANAGED: ClassVar[frozenset[str]] = frozenset({"port", "bind", "dir", "daemonize"})
    DEFAULTS: ClassVar[Mapping[str, str]] = {"save": "", "appendonly": "no"}

    def __init__(
        self,
        config: Mapping[str, str | int | None] | None = None,
        *,
        binary: str | None = None,
        port: int | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        config = dict(config or {})
        managed = self._MANAGED.intersection(config)
        if managed:
            raise ValueError(f"RedisServer manages {sorted(managed)} itself")
        merged: dict[str, str | int | None] = {**self.DEFAULTS, **config}
        self.config: dict[str, str] = {k: str(v) for k, v in merged.items() if v is not None}
        super().__init__(binary=binary, port=port, startup_timeout=startup_timeout)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:N/0`` (with the password when ``requirepass`` is set)."""
        password = self.config.get("requirepass")
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def _argv(self, port: int, data_dir: Path) -> list[str]:
        argv = [self.binary, "--port", str(port), "--bind", self.host, "--dir", str(data_dir)]
        for name, value in self.config.items():
            argv += [f"--{name}", value]
        return argv

    def _probe(self, sock: socket.socket) -> int | None:
        password = self.config.get("requirepass")
        if password:
            sock.sendall(_resp("AUTH", password))
            if not _read_until(sock, b"\r\n").startswith(b"+OK"):
                return None
        sock.sendall(b"PING\r\n")
        if _read_until(sock, b"\r\n") != b"+PONG\r\n":
            return None  # e.g. -LOADING while an AOF is replayed
        sock.sendall(_resp("INFO", "server"))
        info = _read_until(sock, b"\r\n\r\n").decode(errors="replace")
        for line in info.splitlines():
            if line.startswith("process_id:"):
                return int(line.partition(":")[2])
        return None


def _resp(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        raw = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class MemcachedServer(ServerProcess):
    """A throw-away ``memcached`` (TCP only: ``-U 0``).

    ``options`` adds or overrides command-line flags, e.g. ``{"-I": "2m", "-m": 64}`` (item
    size limit, memory in MB); a value of ``None`` passes a bare flag (``{"-M": None}``).
    """

    binary_name = "memcached"
    scheme = "memcached"
    _MANAGED: ClassVar[frozenset[str]] = frozenset(
        {"-p", "-l", "-d", "--port", "--listen", "--daemon"}
    )
    DEFAULTS: ClassVar[Mapping[str, str]] = {"-U": "0"}
    _addr_in_use = ("Address already in use", "failed to listen")

    def __init__(
        self,
        options: Mapping[str, str | int | None] | None = None,
        *,
        binary: str | None = None,
        port: int | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        options = dict(options or {})
        managed = self._MANAGED.intersection(options)
        if managed:
            raise ValueError(f"MemcachedServer manages {sorted(managed)} itself")
        self.options: dict[str, str | None] = {
            k: None if v is None else str(v) for k, v in {**self.DEFAULTS, **options}.items()
        }
        if hasattr(os, "geteuid") and os.geteuid() == 0 and "-u" not in self.options:
            self.options["-u"] = "root"  # memcached refuses to run as root without it
        super().__init__(binary=binary, port=port, startup_timeout=startup_timeout)

    @property
    def url(self) -> str:
        """``memcached://127.0.0.1:N``."""
        return f"memcached://{self.host}:{self.port}"

    def _argv(self, port: int, data_dir: Path) -> list[str]:
        argv = [self.binary, "-l", self.host, "-p", str(port)]
        for flag, value in self.options.items():
            argv.append(flag)
            if value is not None:
                argv.append(value)
        return argv

    def _probe(self, sock: socket.socket) -> int | None:
        sock.sendall(b"version\r\n")
        if not _read_until(sock, b"\r\n").startswith(b"VERSION "):
            return None
        sock.sendall(b"stats\r\n")
        for line in _read_until(sock, b"END\r\n").decode(errors="replace").splitlines():
            if line.startswith("STAT pid "):
                return int(line.split()[2])
        return None


# -- TLS and Sentinel (the Redis provider's rediss:// and redis+sentinel:// tests) ----------------


def make_self_signed_cert(directory: Path, *, openssl: str | None = None) -> tuple[Path, Path]:
    """A throw-away certificate and key for 127.0.0.1/localhost, made with the ``openssl`` CLI.

    The certificate is its own CA (``req -x509`` marks it ``CA:TRUE``), so clients verify the
    server by passing it as ``ssl_ca_certs``. Raises :class:`BinaryNotFound` without ``openssl``.
    """
    openssl = openssl or shutil.which("openssl")
    if openssl is None:
        raise BinaryNotFound(f"{MISSING_SERVER_MARK}: openssl (needed to make a TLS certificate)")
    cert, key = directory / "tls-cert.pem", directory / "tls-key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class TLSRedisServer(RedisServer):
    """A ``redis-server`` that also listens with TLS (``--tls-port``) on a second free port.

    The plain port stays open for the readiness probe; :attr:`url` is the ``rediss://`` one and
    :attr:`ca_certs` the self-signed certificate clients must trust. Needs a redis-server built
    with TLS (Debian's is) and the ``openssl`` CLI.
    """

    def __init__(
        self,
        config: Mapping[str, str | int | None] | None = None,
        *,
        binary: str | None = None,
        port: int | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        super().__init__(config, binary=binary, port=port, startup_timeout=startup_timeout)
        self.tls_port: int | None = None
        self.ca_certs: Path | None = None

    def _argv(self, port: int, data_dir: Path) -> list[str]:
        if self.ca_certs is None:
            self.ca_certs, self._key = make_self_signed_cert(data_dir)
        if self.tls_port is None:
            self.tls_port = free_port()
        return [
            *super()._argv(port, data_dir),
            "--tls-port", str(self.tls_port),
            "--tls-cert-file", str(self.ca_certs),
            "--tls-key-file", str(self._key),
            "--tls-ca-cert-file", str(self.ca_certs),
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    @property
    def url(self) -> str:
        """``rediss://127.0.0.1:TLS_PORT/0`` (pass :attr:`ca_certs` as ``ssl_ca_certs``)."""
        return f"rediss://{self.host}:{self.tls_port}/0"

    def close(self) -> None:
        super().close()
        self.tls_port = None
        self.ca_certs = None


def _conf_quoted(value: str) -> str:
    """A redis.conf argument that may hold spaces or quotes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class RedisSentinel(RedisServer):
    """A Redis Sentinel (``redis-server <conf> --sentinel``) monitoring one master.

    ``master`` is the :class:`RedisServer` to monitor under the name ``service``; quorum 1 and
    short down/failover timeouts, so a failover test takes a few seconds. ``password`` makes
    the sentinel itself require one (``requirepass``), and :attr:`url` carries it as
    ``sentinel_password``.
    """

    DEFAULTS: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        master: RedisServer,
        service: str = "mymaster",
        *,
        binary: str | None = None,
        port: int | None = None,
        startup_timeout: float = 10.0,
        password: str | None = None,
    ) -> None:
        super().__init__(binary=binary, port=port, startup_timeout=startup_timeout)
        self.master = master
        self.service = service
        if password:
            self.config["requirepass"] = password  # the readiness probe AUTHs with it

    def _argv(self, port: int, data_dir: Path) -> list[str]:
        conf = data_dir / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind {self.host}\ndir {data_dir}\n"
            f"sentinel monitor {self.service} {self.master.host} {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
            f"sentinel failover-timeout {self.service} 3000\n"
            + "".join(f"{name} {_conf_quoted(value)}\n" for name, value in self.config.items())
        )
        return [self.binary, str(conf), "--sentinel"]

    @property
    def url(self) -> str:
        """``redis+sentinel://127.0.0.1:PORT/SERVICE/0[?sentinel_password=...]``."""
        password = self.config.get("requirepass")
        auth = f"?sentinel_password={quote(password, safe='')}" if password else ""
        return f"redis+sentinel://{self.host}:{self.port}/{self.service}/0{auth}"


# -- Redis Cluster (the redis+cluster:// provider's tests) ---------------------------------------


def _redis_command(host: str, port: int, *parts: str, timeout: float = 1.0) -> str:
    """One command to a Redis node over a raw socket; its status or bulk reply as text."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_resp(*parts))
        head, _, data = _read_until(sock, b"\r\n").partition(b"\r\n")
        if head.startswith((b"+", b"-", b":")):
            return head[1:].decode(errors="replace")
        if not head.startswith(b"$"):
            raise ConnectionError(f"unexpected reply {head[:40]!r}")
        size = int(head[1:])
        while len(data) < size + 2:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("server closed the connection")
            data += chunk
        return data[:size].decode(errors="replace")


def _cluster_port() -> int:
    while True:
        port = free_port()
        if port <= 55535:
            return port


def _slot_ranges(fields: list[str]) -> list[tuple[int, int]]:
    ranges = []
    for field in fields:
        if field.startswith("["):  # a slot being migrated
            continue
        low, _, high = field.partition("-")
        ranges.append((int(low), int(high or low)))
    return ranges


class RedisCluster:
    """A local Redis Cluster: ``primaries`` primaries with ``replicas`` replicas each.

    Each node is a :class:`RedisServer` with ``--cluster-enabled yes`` in its own directory on a
    free port; :meth:`start` joins them with ``redis-cli --cluster create`` and waits until every
    node reports ``cluster_state:ok`` and every replica is in sync. ``node_timeout`` (ms) is
    short so that a killed primary is failed over in a few seconds.
    """

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 1,
        *,
        binary: str | None = None,
        cli: str | None = None,
        node_timeout: int = 2000,
        startup_timeout: float = 30.0,
    ) -> None:
        if primaries < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 primaries")
        config = {
            "cluster-enabled": "yes",
            "cluster-config-file": "nodes.conf",
            "cluster-node-timeout": str(node_timeout),
            "cluster-replica-validity-factor": "0",  # any replica may take over
        }
        # Redis refuses ports above 55535 in cluster mode (the bus port once defaulted to
        # port + 10000); the bus port is given explicitly, a free one.
        self.nodes = [
            RedisServer(
                {**config, "cluster-port": str(free_port())}, binary=binary, port=_cluster_port()
            )
            for _ in range(primaries * (replicas + 1))
        ]
        self.replicas = replicas
        self.host = HOST
        self.startup_timeout = startup_timeout
        self.cli = (
            cli
            or shutil.which("redis-cli")
            or str(Path(self.nodes[0].binary).with_name("redis-cli"))
        )

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:P1,...`` listing every node as a startup node."""
        return "redis+cluster://" + ",".join(f"{n.host}:{n.port}" for n in self.nodes)

    def start(self) -> Self:
        for node in self.nodes:
            node.start()
        if not os.path.exists(self.cli):
            raise BinaryNotFound(f"{MISSING_SERVER_MARK}: redis-cli (to create the cluster)")
        argv = [self.cli, "--cluster", "create"]
        argv += [f"{n.host}:{n.port}" for n in self.nodes]
        argv += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise ServerStartError(
                f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}"
            )
        self.wait_until_ok(self.nodes, timeout=self.startup_timeout)
        return self

    def _live(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.running]

    def cluster_nodes(self) -> list[list[str]]:
        """``CLUSTER NODES`` of a live node, one list of fields per node."""
        for node in self._live():
            try:
                text = _redis_command(node.host, node.port, "CLUSTER", "NODES")
            except OSError:
                continue
            return [line.split() for line in text.splitlines() if line.strip()]
        raise ServerStartError("no live cluster node answers")

    def primary_for_slot(self, slot: int) -> RedisServer:
        """The node that serves ``slot`` now (as a live node sees it)."""
        for fields in self.cluster_nodes():
            healthy = "master" in fields[2] and "fail" not in fields[2]
            if healthy and any(low <= slot <= high for low, high in _slot_ranges(fields[8:])):
                port = int(fields[1].split("@")[0].rpartition(":")[2])
                return next(n for n in self.nodes if n.port == port)
        raise ServerStartError(f"no healthy primary serves slot {slot}")

    def kill_primary(self, slot: int = 0) -> RedisServer:
        """SIGKILL the primary serving ``slot``; returns it (its replica should take over)."""
        node = self.primary_for_slot(slot)
        node.kill()
        return node

    def wait_until_ok(self, nodes: list[RedisServer] | None = None, timeout: float = 20.0) -> None:
        """Until every live node says ``cluster_state:ok``, every slot is served by a live
        primary and every live replica's link to its primary is up."""
        nodes = nodes if nodes is not None else self._live()
        deadline = time.monotonic() + timeout
        problem = "not checked yet"
        while True:
            try:
                problem = self._problem(nodes)
            except OSError as exc:
                problem = repr(exc)
            if not problem:
                return
            if time.monotonic() > deadline:
                raise ServerStartError(f"cluster not ok after {timeout:.0f}s: {problem}")
            time.sleep(0.1)

    def _problem(self, nodes: list[RedisServer]) -> str:
        live_ports = {n.port for n in nodes if n.running}
        for node in nodes:
            info = _redis_command(node.host, node.port, "CLUSTER", "INFO")
            if "cluster_state:ok" not in info:
                return f"{node.port}: cluster_state not ok"
            replication = _redis_command(node.host, node.port, "INFO", "replication")
            if "role:slave" in replication and "master_link_status:up" not in replication:
                return f"{node.port}: replica not in sync"
        served = 0
        for fields in self.cluster_nodes():
            port = int(fields[1].split("@")[0].rpartition(":")[2])
            if "master" in fields[2] and "fail" not in fields[2] and port in live_ports:
                served += sum(high - low + 1 for low, high in _slot_ranges(fields[8:]))
        return "" if served == 16384 else f"{served} of 16384 slots served by live primaries"

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
