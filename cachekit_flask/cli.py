"""``flask cachekit ...``: stats, clear, warm, inspect and serve-grpc for the app's caches.

Registered on ``app.cli`` by ``init_app``. Every command works on each of the app's
``cachekit_flask.Cache`` objects, or on the one named with ``--cache NAME`` (the core cache's
``name``). User mistakes (an unknown cache, a provider that cannot do the operation, a missing
file) exit with a ``click`` usage error, never a traceback; a cache error (its server down)
exits 1 with one line. ``stats`` shows ``-`` for the figures a down server would give and
fails, as ``manage.py cachekit_stats`` does, rather than reporting an empty cache.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from werkzeug.utils import import_string

from cachekit import Cache as CoreCache
from cachekit import DistributedCache
from cachekit.errors import CacheError, ConfigurationError, UnsupportedOperation

if TYPE_CHECKING:
    from .extension import Cache

__all__ = ["cachekit_cli", "register_cli"]

cachekit_cli = AppGroup("cachekit", help="cachekit: inspect and manage the app's caches.")

_cache_option = click.option(
    "--cache", "cache_name", default=None, help="Only the cache with this name (default: all)."
)


def register_cli(app: Flask) -> None:
    """Add the ``cachekit`` command group to ``app.cli`` (once)."""
    if "cachekit" not in app.cli.commands:
        app.cli.add_command(cachekit_cli)


def app_caches(app: Flask) -> list[tuple[Cache, CoreCache]]:
    """The ``cachekit_flask.Cache`` objects of ``app`` with their core caches."""
    from .base import STATE_KEY

    cores = app.extensions.get("cache", {})
    return [(ext, cores[ext]) for ext in app.extensions.get(STATE_KEY, {}) if ext in cores]


def _selected(cache_name: str | None) -> Iterator[CoreCache]:
    caches = [core for _, core in app_caches(current_app)]
    if not caches:
        raise click.UsageError("this app has no cachekit_flask.Cache (call init_app first)")
    if cache_name is None:
        yield from caches
        return
    chosen = [core for core in caches if core.name == cache_name]
    if not chosen:
        names = ", ".join(sorted(core.name for core in caches))
        raise click.BadParameter(f"no cache named {cache_name!r}; the app has: {names}")
    yield from chosen


@cachekit_cli.command("stats")
@_cache_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per cache.")
def stats_command(cache_name: str | None, as_json: bool) -> None:
    """Show each cache's statistics (hits, misses, items, memory...). Exits with an error when
    a cache's statistics, or its server's figures, could not be read."""
    failed: list[str] = []
    for core in _selected(cache_name):
        try:
            stats = core.get_stats()
        except CacheError as exc:
            raised = f"{type(exc).__name__}: {exc}"
            failed.append(f"{core.name}: {raised}")
            if as_json:
                entry = {"name": core.name, "provider": core.provider_name, "error": raised}
                click.echo(json.dumps(entry, sort_keys=True))
            else:
                click.echo(f"{core.name} ({core.provider_name})\n  {raised}")
            continue
        # Counters but no server figures (zeros, or a sum over the nodes that answered): shown
        # with "-" and failed, as manage.py cachekit_stats does, so that a health check fails
        # on a down server instead of reporting an empty cache.
        server_error = stats.server_read_error
        error = None if server_error is None else f"server unreachable: {server_error}"
        if error is not None:
            failed.append(f"{core.name}: {error}")
        if as_json:
            data = stats.as_dict()
            if error is not None:
                data["error"] = error
            click.echo(json.dumps(data, default=str, sort_keys=True))
            continue
        unread = error is not None
        click.echo(f"{core.name} ({core.provider_name})")
        rows = {
            "items": "-" if unread else stats.items,
            "hits": stats.hits,
            "misses": stats.misses,
            "hit_ratio": f"{stats.hit_ratio:.3f}",
            "sets": stats.sets,
            "deletes": stats.deletes,
            "evictions": "-" if unread else stats.evictions,
            "memory_bytes": "-" if unread else stats.memory_bytes,
        }
        for label, value in rows.items():
            click.echo(f"  {label:<13}{value}")
        if error is not None:
            click.echo(f"  {error}")
    if failed:
        raise click.ClickException(
            f"could not read the statistics of {len(failed)} cache(s): {'; '.join(failed)}"
        )


@cachekit_cli.command("clear")
@_cache_option
@click.option("--pattern", default=None, help="Only keys matching this Redis glob.")
@click.option("--tag", "tags", multiple=True, help="Only keys carrying this tag (repeatable).")
def clear_command(cache_name: str | None, pattern: str | None, tags: tuple[str, ...]) -> None:
    """Clear the caches, or only the keys matching --pattern / carrying a --tag."""
    for core in _selected(cache_name):
        try:
            if pattern is None and not tags:
                core.clear()
                click.echo(f"{core.name}: cleared")
                continue
            if not isinstance(core, DistributedCache):
                raise click.UsageError(
                    f"{core.name} ({core.provider_name}) cannot select keys by pattern or tag"
                )
            if pattern is not None:
                removed = core.delete_pattern(pattern)
                click.echo(f"{core.name}: {removed} key(s) matching {pattern!r}")
            if tags:
                removed = core.invalidate_tags(list(tags))
                click.echo(f"{core.name}: {removed} key(s) tagged {', '.join(tags)}")
        except CacheError as exc:  # a server down: one line, not the driver's traceback
            raise click.ClickException(f"{core.name}: {exc}") from exc


@cachekit_cli.command("warm")
@click.option(
    "--urls",
    "urls_file",
    type=click.File("r"),
    default=None,
    help="A file of URL paths, one per line, fetched through the app (warms cached views).",
)
@click.option(
    "--callable",
    "dotted",
    multiple=True,
    help="A function 'package.module:func' (or 'package.module.func') called with no "
    "arguments in the app context (warms memoized functions). Repeatable.",
)
def warm_command(urls_file: Any, dotted: tuple[str, ...]) -> None:
    """Fill the caches ahead of traffic: fetch URLs and/or call warm-up functions."""
    if urls_file is None and not dotted:
        raise click.UsageError("give --urls FILE and/or --callable dotted.path")
    failures = 0
    if urls_file is not None:
        client = current_app.test_client()
        for line in urls_file:
            url = line.strip()
            if not url or url.startswith("#"):
                continue
            response = client.get(url)
            ok = response.status_code < 400
            failures += not ok
            click.echo(f"{response.status_code} {url}")
    for path in dotted:
        try:
            fn = import_string(path.replace(":", "."))
        except ImportError as exc:
            raise click.BadParameter(f"cannot import {path!r}: {exc}") from exc
        if not callable(fn):
            raise click.BadParameter(f"{path!r} is not callable")
        try:
            result = fn()
        except CacheError as exc:  # a server down: one line, not the driver's traceback
            raise click.ClickException(f"{path}: {type(exc).__name__}: {exc}") from exc
        click.echo(f"called {path}" + (f": {result}" if result is not None else ""))
    if failures:
        raise click.ClickException(f"{failures} URL(s) answered with an error status")


@cachekit_cli.command("inspect")
@_cache_option
@click.argument("key")
def inspect_command(cache_name: str | None, key: str) -> None:
    """Show what is stored under KEY: TTL, size, serializer, value type."""
    found = False
    for core in _selected(cache_name):
        try:
            info = core.inspect(key)
        except CacheError as exc:
            raise click.ClickException(f"{core.name}: {exc}") from exc
        if info is None:
            click.echo(f"{core.name}: {key!r} not found")
            continue
        found = True
        ttl = "never expires" if info.ttl is None else f"{info.ttl:.1f}s"
        click.echo(f"{core.name}: {info.key}")
        click.echo(f"  ttl          {ttl}")
        click.echo(f"  size         {'-' if info.size is None else info.size}")
        click.echo(f"  serializer   {info.serializer or '-'}")
        click.echo(f"  compression  {info.compression or '-'}")
        click.echo(f"  value_type   {info.value_type}")
    if not found:
        sys.exit(1)


@cachekit_cli.command("serve-grpc")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=50051, show_default=True, type=int, help="0: any free port.")
@click.option(
    "--token",
    default=None,
    help="Client bearer token (ps shows it: prefer --token-file or $CACHEKIT_GRPC_TOKEN).",
)
@click.option(
    "--token-file",
    default=None,
    metavar="PATH",
    help="File holding the client bearer token (surrounding whitespace ignored). "
    "Without either option: $CACHEKIT_GRPC_TOKEN.",
)
@click.option(
    "--admin-token",
    default=None,
    help="Admin bearer token (ps shows it: prefer --admin-token-file or "
    "$CACHEKIT_GRPC_ADMIN_TOKEN).",
)
@click.option(
    "--admin-token-file",
    default=None,
    metavar="PATH",
    help="File holding the admin bearer token. Without either option: $CACHEKIT_GRPC_ADMIN_TOKEN.",
)
@click.option("--tls-cert", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--tls-key", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--tls-client-ca", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--metrics-port", default=None, type=int)
def serve_grpc_command(  # noqa: PLR0917 - one parameter per click option
    host: str,
    port: int,
    token: str | None,
    token_file: str | None,
    admin_token: str | None,
    admin_token_file: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    metrics_port: int | None,
) -> None:
    """Serve the app's caches over gRPC (one namespace per cache name) until SIGTERM."""
    from cachekit.grpc.cli import resolve_tokens  # not at import: init_app stays light

    try:
        # The environment is read here, not by click, which takes an empty variable for an
        # unset one: a secret that did not render would serve without authentication.
        token, admin_token = resolve_tokens(
            token=token,
            token_file=token_file,
            admin_token=admin_token,
            admin_token_file=admin_token_file,
        )
    except ConfigurationError as exc:  # names the option, file or variable, not the token
        raise click.UsageError(str(exc)) from exc
    try:
        from cachekit.grpc.server import serve
    except ImportError as exc:
        raise click.ClickException(
            f"the gRPC server is not available ({exc}); install it with "
            "pip install 'cachekit[grpc]'"
        ) from exc
    namespaces: dict[str, CoreCache] = {}
    for _, core in app_caches(current_app):
        if core.name in namespaces:
            raise click.UsageError(
                f"two caches are named {core.name!r}; give them distinct names "
                "(CACHEKIT_OPTIONS={'name': ...}) to serve both"
            )
        namespaces[core.name] = core
    if not namespaces:
        raise click.UsageError("this app has no cachekit_flask.Cache (call init_app first)")

    def ready(bound: int) -> None:
        click.echo(f"serving {', '.join(sorted(namespaces))} on {host}:{bound}")
        sys.stdout.flush()

    try:
        serve(
            namespaces,
            host=host,
            port=port,
            token=token,
            admin_token=admin_token,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_client_ca=tls_client_ca,
            metrics_port=metrics_port,
            ready=ready,
            metrics_ready=lambda bound: click.echo(
                f"metrics on http://{f'[{host}]' if ':' in host else host}:{bound}/metrics"
            ),
        )
    except (CacheError, UnsupportedOperation, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
