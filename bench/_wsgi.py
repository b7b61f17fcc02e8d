"""A WSGI app under gunicorn and a load generator: shared by the Django and Flask benches."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def get(port: int, path: str, header: str | None = None) -> tuple[int, str]:
    """``(status, the header's value)``, or ``(status, the body)`` without ``header``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return response.status, (
            body.decode() if header is None else response.getheader(header, "")
        )
    finally:
        conn.close()


#: The two set-ups gunicorn's docs describe for production, as command-line options. ``sync``
#: (the default worker) serves one request per connection and closes it (it expects a buffering
#: proxy in front), so every request also pays a TCP accept and close; ``gthread`` keeps
#: connections alive and runs threads per worker (2-4 x cores, as the docs suggest), so a
#: request costs only its own handling and the GIL is shared by a worker's threads.
WORKER_CLASSES: dict[str, list[str]] = {
    "sync": ["--worker-class=sync"],
    "gthread": ["--worker-class=gthread", "--threads=4"],
}


@contextlib.contextmanager
def gunicorn(
    app: str,
    env: Mapping[str, str],
    *,
    port: int,
    workers: int,
    name: str,
    probe: str,
    worker_class: str = "sync",
) -> Iterator[subprocess.Popen[bytes]]:
    """gunicorn serving ``app`` with ``env`` added, ready once ``probe`` answers 200; stopped
    on exit. ``worker_class`` is a key of :data:`WORKER_CLASSES`."""
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        app,
        f"--bind=127.0.0.1:{port}",
        f"--workers={workers}",
        *WORKER_CLASSES[worker_class],
        "--log-level=warning",
        "--backlog=2048",
    ]
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=REPO, env=full_env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                assert process.stderr is not None
                raise RuntimeError(f"gunicorn for {name} exited: {process.stderr.read().decode()}")
            try:
                status, _ = get(port, probe)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                continue
            if status != 200:
                raise RuntimeError(f"{name}: GET {probe} answered {status}")
            break
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def drive_wrk(port: int, path: str, seconds: float, connections: int, threads: int = 2) -> float:
    """Requests per second that ``wrk`` measured; error responses are an error."""
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses:\n{result.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if match is None:
        raise RuntimeError(f"cannot read wrk's output:\n{result.stdout}")
    sockets = re.search(r"Socket errors: (.*)", result.stdout)
    if sockets and re.search(r"(connect|timeout) [1-9]", sockets.group(1)):
        print(f"    wrk socket errors: {sockets.group(1)}")  # requests lost, not just closed
    return float(match.group(1))


def drive_python(port: int, path: str, seconds: float, connections: int) -> float:
    """A fallback load generator: ``connections`` threads, one request per connection."""
    stop = time.perf_counter() + seconds
    counts = [0] * connections
    failures: list[str] = []

    def worker(slot: int) -> None:
        while time.perf_counter() < stop:
            status, _ = get(port, path)
            if status != 200:
                failures.append(str(status))
                return
            counts[slot] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"error responses: {failures[:5]}")
    return sum(counts) / (time.perf_counter() - started)
