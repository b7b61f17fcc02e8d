"""``manage.py serve``: create the database, start the site, print its URL.

One command from a fresh clone: it runs ``migrate`` (the SQLite file holds the sessions that
the ``cached_db`` engine writes through), picks port 8000 or, if that is taken, any free port,
and hands over to ``runserver`` (no autoreload; static files served even with ``DEBUG`` off, as
this is a local demo, not a deployment). ``--port 0`` picks any free port. A ``--host`` that
``ALLOWED_HOSTS`` does not list is added to it, and ``0.0.0.0``/``::`` allow ``'*'`` (with a
printed note), so that the printed URL answers instead of a 400.
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


#: Addresses that listen on every interface: visitors name the machine as they know it.
WILDCARDS = ("0.0.0.0", "::")


class Command(BaseCommand):
    help = "Migrate, start the example site and print its URL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="Address (default 127.0.0.1; 0.0.0.0 or :: for every interface).",
        )
        parser.add_argument(
            "--port",
            type=int,
            help=f"Port (default {DEFAULT_PORT}, or a free one if {DEFAULT_PORT} is taken; "
            "0: any free port).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host: str = options["host"].strip("[]")
        port: int | None = options["port"]
        if port is None:
            port = DEFAULT_PORT if port_is_free(host, DEFAULT_PORT) else free_port(host)
        elif port == 0:  # any free port, as the other server commands take it; printed below
            port = free_port(host)
        elif not 1 <= port <= 65535:
            raise CommandError(f"--port must be 0-65535 (0: any free port), got {port}")
        call_command("migrate", interactive=False, verbosity=0)
        shown = f"[{host}]" if ":" in host else host
        # Django answers 400 to a Host header not in ALLOWED_HOSTS, so the printed URL must be
        # allowed; runserver runs in this process and reads the changed setting.
        url_host, note = shown, None
        if host in WILDCARDS:
            settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "*"]
            url_host = "[::1]" if ":" in host else "127.0.0.1"
            note = (
                f"Listening on every interface ({shown}): ALLOWED_HOSTS is '*' for this local "
                "demo, so other machines can use any name or address of this one. Never serve "
                "a real site this way."
            )
        elif shown.lower() not in (h.lower() for h in settings.ALLOWED_HOSTS):
            settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, shown]
            note = f"Added {shown!r} to ALLOWED_HOSTS for this local demo."
        backend = settings.CACHEKIT_URL or "the embedded memory provider"
        self.stdout.write(
            self.style.SUCCESS(f"cachekit example site: http://{url_host}:{port}/")
            + f"  (caches on {backend}; Ctrl-C to stop)"
        )
        if note is not None:
            self.stdout.write(self.style.WARNING(note))
        self.stdout.flush()
        call_command(
            "runserver",
            f"{shown}:{port}",
            use_reloader=False,
            insecure_serving=True,
            skip_checks=False,
        )
