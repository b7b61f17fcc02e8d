"""``manage.py cachekit_stats``: hit ratio, items, memory and breaker state of each cache alias."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import cachekit

from ...shared import sharing
from ..aliases import AliasInfo, aliases, breaker_summary, for_command, format_bytes

_COLUMNS = ("alias", "provider", "hits", "misses", "hit ratio", "items", "memory", "evictions")
_VERBOSE_COLUMNS = ("sets", "deletes", "expirations", "avg get", "uptime")


class Command(BaseCommand):
    help = (
        "Show hits, misses, hit ratio, items, memory, evictions and circuit-breaker state of "
        "every cache alias (or one with --alias). Aliases that are not cachekit backends are "
        "listed without statistics. Exits with an error when an alias's statistics, or its "
        "server's figures, could not be read."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--alias", help="Only this alias of settings.CACHES.")
        parser.add_argument(
            "--json", action="store_true", help="Print a JSON object keyed by alias instead."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        infos = for_command(options["alias"])
        rows: list[tuple[AliasInfo, cachekit.CacheStats | None, str | None]] = []
        for info in infos:
            try:
                stats = info.stats()
            except cachekit.CacheError as exc:
                rows.append((info, None, info.misconfigured or f"{type(exc).__name__}: {exc}"))
                continue
            # Counters but no server figures (zeros, or a sum over the nodes that answered):
            # shown, and failed like an unreadable alias, not passed off as an empty cache.
            server_error = stats.server_read_error if stats is not None else None
            error = None if server_error is None else f"server unreachable: {server_error}"
            rows.append((info, stats, error))

        # Aliases differing only in KEY_PREFIX/VERSION share one core: its counters are theirs
        # together, not each alias's own; said so rather than shown as if they were.
        shared = sharing({info.alias: info.core for info in aliases()})
        if options["json"]:
            data = _as_json(rows)
            for info in infos:
                if shared.get(info.alias):
                    data[info.alias]["shared_with"] = list(shared[info.alias])
            self.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str))
        else:
            self._table(rows, options["verbosity"], shared)

        failed = [(info.alias, error) for info, _, error in rows if error is not None]
        if failed:
            detail = "; ".join(f"{alias}: {error}" for alias, error in failed)
            raise CommandError(
                f"could not read the statistics of {len(failed)} alias(es): {detail}"
            )

    def _table(
        self,
        rows: list[tuple[AliasInfo, cachekit.CacheStats | None, str | None]],
        verbosity: int,
        shared: dict[str, tuple[str, ...]],
    ) -> None:
        verbose = verbosity >= 2
        header = [*_COLUMNS, *(_VERBOSE_COLUMNS if verbose else ()), "breaker"]
        lines: list[list[str]] = []
        notes: list[str] = []
        for info, stats, error in rows:
            if stats is None:
                reason = error or f"not a cachekit backend ({info.backend})"
                lines.append([info.alias, "-", *["-"] * (len(header) - 2)])
                notes.append(f"{info.alias}: {reason}")
                continue
            unread = error is not None  # the server figures are not the cache's: "-"
            line = [
                info.alias,
                stats.provider,
                str(stats.hits),
                str(stats.misses),
                f"{stats.hit_ratio:.1%}",
                "-" if unread else str(stats.items),
                "-" if unread else format_bytes(stats.memory_bytes),
                "-" if unread else str(stats.evictions),
            ]
            if error is not None:
                notes.append(f"{info.alias}: {error}")
            if shared.get(info.alias):
                others = ", ".join(repr(alias) for alias in shared[info.alias])
                notes.append(
                    f"{info.alias}: statistics shared with {others} (one cache; only KEY_PREFIX "
                    "or VERSION differs)"
                )
            if verbose:
                avg = stats.avg_get_seconds
                line += [
                    str(stats.sets),
                    str(stats.deletes),
                    "-" if unread else str(stats.expirations),
                    "-" if avg is None else f"{avg * 1e6:.1f} us",
                    f"{stats.uptime:.0f} s",
                ]
            line.append(breaker_summary(stats.extra) or "-")
            lines.append(line)

        widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

        def render(row: list[str]) -> str:
            cells = [
                cell.ljust(width) if i < 2 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ]
            return "  ".join(cells).rstrip()

        if verbosity >= 1:
            self.stdout.write(self.style.MIGRATE_HEADING(render(header)))
        for line in lines:
            self.stdout.write(render(line))
        if verbosity >= 1:
            for note in notes:
                self.stdout.write(self.style.WARNING(note))


def _as_json(
    rows: list[tuple[AliasInfo, cachekit.CacheStats | None, str | None]],
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for info, stats, error in rows:
        entry: dict[str, Any] = {"backend": info.backend, "cachekit": info.is_cachekit}
        if stats is not None:
            entry["stats"] = stats.as_dict()
            entry["breaker"] = breaker_summary(stats.extra)
        if error is not None:
            entry["error"] = error
        data[info.alias] = entry
    return data
