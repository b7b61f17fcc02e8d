"""``manage.py serve``: create the database, start the site, print its URL.

One command from a fresh clone: it runs ``migrate`` (the SQLite file holds the sessions that
the ``cached_db`` engine writes through), picks port 8000 or, if that is taken, any free port,
and hands over to ``runserver`` (no autoreload; static files served even with ``DEBUG`` off, as
this is a local demo, not a deployment).
"""

from __future__ import annotations

import socket
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

DEFAULT_PORT = 8000


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Command(BaseCommand):
    help = "Migrate, start the example site and print its URL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address (default 127.0.0.1).")
        parser.add_argument(
            "--port",
            type=int,
            help=f"Port (default {DEFAULT_PORT}, or a free one if {DEFAULT_PORT} is taken).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host: str = options["host"]
        port: int | None = options["port"]
        if port is None:
            port = DEFAULT_PORT if port_is_free(host, DEFAULT_PORT) else free_port(host)
        elif not 1 <= port <= 65535:
            raise CommandError(f"--port must be 1-65535, got {port}")
        call_command("migrate", interactive=False, verbosity=0)
        shown = f"[{host}]" if ":" in host else host
        backend = settings.CACHEKIT_URL or "the embedded memory provider"
        self.stdout.write(
            self.style.SUCCESS(f"cachekit example site: http://{shown}:{port}/")
            + f"  (caches on {backend}; Ctrl-C to stop)"
        )
        self.stdout.flush()
        call_command(
            "runserver",
            f"{shown}:{port}",
            use_reloader=False,
            insecure_serving=True,
            skip_checks=False,
        )
