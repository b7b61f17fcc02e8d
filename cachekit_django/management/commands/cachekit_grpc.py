"""``manage.py cachekit_grpc``: serve the project's cachekit caches over gRPC, one namespace each.

Each cachekit alias becomes the namespace of its name (``grpc://host:port/default``). The core
cache is served as it is, so clients see the keys as stored: Django's made-key form
(``:1:user:1`` with the default ``KEY_FUNCTION``). Aliases that are not cachekit backends are
left out (with a note), since the service needs the core contract.

Tokens are better passed in a file (``--token-file``, ``--admin-token-file``) or through the
environment (``CACHEKIT_GRPC_TOKEN``, ``CACHEKIT_GRPC_ADMIN_TOKEN``) than on the command line,
where ``ps`` shows them; they are resolved and checked as by ``cachekit serve``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cachekit.errors import CacheError, ConfigurationError
from cachekit.grpc.cli import ADMIN_TOKEN_ENV, TOKEN_ENV, resolve_tokens

from ..aliases import for_command

_MAX_PORT = 65535


class Command(BaseCommand):
    help = (
        "Serve the project's cachekit caches over gRPC (one namespace per alias) until "
        "SIGTERM/SIGINT."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to bind (127.0.0.1).")
        parser.add_argument(
            "--port", type=int, default=50051, help="Port (default 50051; 0 = any free port)."
        )
        parser.add_argument(
            "--alias",
            action="append",
            dest="aliases",
            metavar="ALIAS",
            help="Serve only this alias (repeatable; default: every cachekit alias).",
        )
        for option, env, what in (
            ("--token", TOKEN_ENV, "Bearer token clients must send"),
            ("--admin-token", ADMIN_TOKEN_ENV, "Token for admin calls such as clear"),
        ):
            tokens = parser.add_mutually_exclusive_group()
            tokens.add_argument(
                option, help=f"{what} (ps shows it: prefer {option}-file or ${env})."
            )
            tokens.add_argument(
                f"{option}-file",
                metavar="PATH",
                help=f"File holding the {what[0].lower()}{what[1:]} (surrounding whitespace "
                f"ignored). Without either option: ${env}.",
            )
        parser.add_argument("--tls-cert", help="PEM certificate chain (with --tls-key).")
        parser.add_argument("--tls-key", help="PEM private key (with --tls-cert).")
        parser.add_argument(
            "--tls-client-ca", help="PEM CA bundle: require client certificates signed by it."
        )
        parser.add_argument(
            "--metrics-port", type=int, help="Also serve Prometheus metrics on this port."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        port: int = options["port"]
        if not 0 <= port <= _MAX_PORT:
            raise CommandError(f"--port must be 0-{_MAX_PORT}, got {port}")
        metrics_port: int | None = options["metrics_port"]
        if metrics_port is not None and not 0 <= metrics_port <= _MAX_PORT:
            raise CommandError(f"--metrics-port must be 0-{_MAX_PORT}, got {metrics_port}")
        try:
            token, admin_token = resolve_tokens(
                token=options["token"],
                token_file=options["token_file"],
                admin_token=options["admin_token"],
                admin_token_file=options["admin_token_file"],
            )
        except ConfigurationError as exc:  # names the option, file or variable, not the token
            raise CommandError(str(exc)) from exc
        cert, key, client_ca = options["tls_cert"], options["tls_key"], options["tls_client_ca"]
        if (cert is None) != (key is None):
            raise CommandError("--tls-cert and --tls-key go together")
        if client_ca is not None and cert is None:
            raise CommandError("--tls-client-ca needs --tls-cert and --tls-key")
        for flag, path in (
            ("--tls-cert", cert),
            ("--tls-key", key),
            ("--tls-client-ca", client_ca),
        ):
            if path is not None and not Path(path).is_file():
                raise CommandError(f"{flag}: no such file {path!r}")

        requested: list[str] | None = options["aliases"]
        infos = (
            for_command(None)
            if requested is None
            else [info for name in requested for info in for_command(name)]
        )
        broken = [f"{info.alias!r} is {info.misconfigured}" for info in infos if info.misconfigured]
        if broken:
            raise CommandError("; ".join(broken))
        plain = [info.alias for info in infos if info.core is None]
        if requested is not None and plain:
            raise CommandError(f"not cachekit backends, cannot be served: {', '.join(plain)}")
        namespaces = {info.alias: info.core for info in infos if info.core is not None}
        if not namespaces:
            raise CommandError("no cachekit backend in settings.CACHES to serve")

        try:
            from cachekit.grpc.server import serve
        except ImportError as exc:
            raise CommandError(
                f"the gRPC server is unavailable ({exc}); install it with "
                "pip install 'cachekit[grpc]'"
            ) from exc

        verbosity: int = options["verbosity"]
        if verbosity >= 1 and plain:
            self.stdout.write(self.style.WARNING(f"Not served (not cachekit): {', '.join(plain)}"))

        def ready(bound: int) -> None:
            if verbosity >= 1:
                scheme = "grpcs" if cert else "grpc"
                names = ", ".join(namespaces)
                self.stdout.write(
                    f"cachekit gRPC listening on {scheme}://{options['host']}:{bound} "
                    f"(namespaces: {names}); Ctrl-C or SIGTERM to stop."
                )
                self.stdout.flush()

        host = options["host"]
        where = f"[{host}]" if ":" in host else host  # an IPv6 address

        def metrics_ready(bound: int) -> None:  # --metrics-port 0 picks one: say which
            if verbosity >= 1:
                self.stdout.write(f"Prometheus metrics on http://{where}:{bound}/metrics")
                self.stdout.flush()

        try:
            serve(
                namespaces,
                host=options["host"],
                port=port,
                token=token,
                admin_token=admin_token,
                tls_cert=cert,
                tls_key=key,
                tls_client_ca=client_ca,
                metrics_port=metrics_port,
                ready=ready,
                metrics_ready=metrics_ready,
            )
        except (CacheError, OSError) as exc:  # a bad namespace name, a port in use...
            raise CommandError(str(exc)) from exc
        if verbosity >= 1:
            self.stdout.write("cachekit gRPC stopped.")
