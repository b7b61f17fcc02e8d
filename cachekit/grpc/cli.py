"""``cachekit serve``: the gRPC server over caches built from provider URLs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Final

from ..errors import ConfigurationError
from .namespaces import Namespaces

__all__ = ["ADMIN_TOKEN_ENV", "TOKEN_ENV", "main", "resolve_token", "resolve_tokens"]

#: Read when neither ``--token`` nor ``--token-file`` is given (by the Django and Flask
#: commands too): unlike the command line, ``ps`` and shell history do not show it.
TOKEN_ENV: Final = "CACHEKIT_GRPC_TOKEN"
ADMIN_TOKEN_ENV: Final = "CACHEKIT_GRPC_ADMIN_TOKEN"
#: A token file is a secret of a few dozen bytes; more is the wrong file (or /dev/zero).
_MAX_TOKEN_FILE_BYTES: Final = 64 * 1024


def _read_token_file(option: str, path: str) -> str:
    """The token in ``path``, without the surrounding whitespace (Docker and Kubernetes secret
    files end in a newline). The messages name the file, never its content."""
    key = option.lstrip("-").replace("-", "_")
    try:
        with open(path, "rb") as file:
            data = file.read(_MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigurationError(f"{option} {path!r}: cannot read it ({reason})", key=key) from exc
    if len(data) > _MAX_TOKEN_FILE_BYTES:
        raise ConfigurationError(
            f"{option} {path!r}: over {_MAX_TOKEN_FILE_BYTES} bytes, not a token file", key=key
        )
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigurationError(f"{option} {path!r}: not UTF-8 text", key=key) from None
    if not token:
        raise ConfigurationError(f"{option} {path!r} is empty", key=key)
    if not token.isprintable() or any(char.isspace() for char in token):
        # Several lines or words: the wrong file (a PEM, a KEY=VALUE env file), not one token.
        raise ConfigurationError(
            f"{option} {path!r}: the token must be one word without whitespace or control "
            "characters",
            key=key,
        )
    return token


def resolve_token(
    option: str,
    given: str | None,
    file: str | None,
    env: str,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """The token of ``option`` (``--token``): its value, else ``option-file``'s content, else
    ``$env``; None if none is set. Both options together, an empty value, a token with
    surrounding whitespace (the header's token is stripped, so it could never match) or a bad
    file raise :class:`~cachekit.errors.ConfigurationError` naming the source, not the token.

    Shared by ``cachekit serve``, ``manage.py cachekit_grpc`` and ``flask cachekit serve-grpc``.
    """
    key = option.lstrip("-").replace("-", "_")
    if given is not None and file is not None:
        raise ConfigurationError(f"{option} and {option}-file are mutually exclusive", key=key)
    if file is not None:
        return _read_token_file(f"{option}-file", file)
    source = option
    if given is None:
        given = (os.environ if environ is None else environ).get(env)
        source = f"${env}"
        if given is not None:  # a secret mounted as a variable often ends in a newline, as files
            given = given.removesuffix("\n").removesuffix("\r")
    if given is None:
        return None
    if not given:
        # Most often a secret that did not render: serving without authentication then would
        # be a silent downgrade, so that must be asked for by leaving it unset.
        raise ConfigurationError(
            f"{option} (or ${env}) is set but empty; give a token, or unset it to serve "
            "without one",
            key=key,
        )
    if given != given.strip():
        raise ConfigurationError(f"{source} must not start or end with whitespace", key=key)
    return given


def resolve_tokens(
    *,
    token: str | None,
    token_file: str | None,
    admin_token: str | None,
    admin_token_file: str | None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str | None, str | None]:
    """``(token, admin_token)`` from the options, their ``-file`` twins or the environment
    (``$CACHEKIT_GRPC_TOKEN``, ``$CACHEKIT_GRPC_ADMIN_TOKEN``); see :func:`resolve_token`."""
    return (
        resolve_token("--token", token, token_file, TOKEN_ENV, environ),
        resolve_token("--admin-token", admin_token, admin_token_file, ADMIN_TOKEN_ENV, environ),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cachekit serve",
        description="Serve caches over gRPC (cachekit.v1.CacheService and CacheAdminService).",
    )
    parser.add_argument(
        "--url",
        default="memory://",
        help="provider URL of the 'default' namespace (default: memory://)",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="another namespace (repeatable)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=50051, help="port (0: any free port)")
    for option, env, what in (
        ("--token", TOKEN_ENV, "bearer token every call must carry"),
        ("--admin-token", ADMIN_TOKEN_ENV, "bearer token of the admin RPCs"),
    ):
        tokens = parser.add_mutually_exclusive_group()
        tokens.add_argument(option, help=f"{what} (ps shows it: prefer {option}-file or ${env})")
        tokens.add_argument(
            f"{option}-file",
            metavar="PATH",
            help=f"file holding the {what} (surrounding whitespace ignored); "
            f"without either option: ${env}",
        )
    parser.add_argument("--tls-cert", help="PEM certificate (enables TLS)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--tls-client-ca", help="PEM CA of client certificates (mutual TLS)")
    parser.add_argument(
        "--metrics-port", type=int, help="serve Prometheus /metrics on this port (0: any free port)"
    )
    return parser


def build_namespaces(url: str, extra: Sequence[str]) -> Namespaces:
    """``{"default": url, NAME: URL...}`` as namespaces the server built and owns (it closes
    them, may rebuild a memory one for ``ConfigurePolicy``, and lists their URLs); each cache
    is named after its namespace unless its URL sets ``name=``. A bad URL names its option."""
    specs = {"default": url}
    for item in extra:
        name, sep, spec = item.partition("=")
        if not sep or not name or not spec:
            raise ConfigurationError(f"--namespace takes NAME=URL, got {item!r}", key="namespace")
        if name == "default":  # it silently replaced --url
            raise ConfigurationError(
                "--namespace default=URL: the default namespace's URL is --url", key="namespace"
            )
        if name in specs:  # the later one silently won
            raise ConfigurationError(f"--namespace {name!r} is given twice", key="namespace")
        specs[name] = spec
    namespaces = Namespaces()
    try:
        for name, spec in specs.items():
            namespaces.create(name, spec)
    except BaseException:
        namespaces.close()  # the ones built before the bad one
        raise
    return namespaces


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    try:
        from .server import serve
    except ImportError as exc:
        print(
            f"cachekit serve needs the grpc extra ({exc}): pip install 'cachekit[grpc]'",
            file=sys.stderr,
        )
        return 2
    try:
        token, admin_token = resolve_tokens(
            token=args.token,
            token_file=args.token_file,
            admin_token=args.admin_token,
            admin_token_file=args.admin_token_file,
        )
        caches = build_namespaces(args.url, args.namespace)

        host = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 address

        def ready(port: int) -> None:
            scheme = "grpcs" if args.tls_cert else "grpc"
            names = ", ".join(caches.names())
            print(f"cachekit: serving {names} on {scheme}://{host}:{port}", flush=True)

        def metrics_ready(port: int) -> None:
            print(f"cachekit: metrics on http://{host}:{port}/metrics", flush=True)

        serve(
            caches,
            host=args.host,
            port=args.port,
            token=token,
            admin_token=admin_token,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
            metrics_port=args.metrics_port,
            ready=ready,
            metrics_ready=metrics_ready,
        )
    except (ConfigurationError, OSError) as exc:
        print(f"cachekit serve: {exc}", file=sys.stderr)
        return 2
    print("cachekit: stopped", flush=True)
    return 0
