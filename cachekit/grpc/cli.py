"""``cachekit serve``: the gRPC server over caches built from provider URLs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import ConfigurationError
from .namespaces import Namespaces

__all__ = ["main"]


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
    parser.add_argument("--token", help="bearer token every call must carry")
    parser.add_argument("--admin-token", help="bearer token of the admin RPCs")
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
            token=args.token,
            admin_token=args.admin_token,
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
