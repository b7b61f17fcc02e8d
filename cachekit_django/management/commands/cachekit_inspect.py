"""``manage.py cachekit_inspect KEY``: what is stored under a Django cache key, and how.

The entry's metadata comes from the core cache's ``inspect`` (not counted as a hit or miss);
the value preview is a normal ``get`` through the Django backend, so it counts as one hit, and
``--no-value`` leaves it out for a read that changes no statistic.
"""

from __future__ import annotations

import json
import reprlib
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import cachekit

from ..aliases import for_command, format_bytes

_ABSENT = object()


#: What the memory backend's stored wrappers (cachekit_django.values) hold, without reading them.
_FROZEN = {"Tree": "dict or list (plain data)", "Pickled": "pickled object"}


def preview(value: Any, length: int) -> str:
    """A ``repr`` of ``value`` cut to about ``length`` characters, containers shortened first."""
    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = max(length, 8)
    shortener.maxlist = shortener.maxtuple = shortener.maxdict = shortener.maxset = 20
    shortener.maxlevel = 4
    text = shortener.repr(value)
    return text if len(text) <= length else text[: max(length - 3, 0)] + "..."


class Command(BaseCommand):
    help = (
        "Show the value preview, TTL, stored size, serializer and compression of one key of a "
        "cachekit cache alias."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", help="The key as the application passes it to cache.get().")
        parser.add_argument("--alias", default="default", help="Cache alias (default: default).")
        parser.add_argument(
            "--key-version", type=int, help="Key version (default: the alias's VERSION)."
        )
        parser.add_argument(
            "--preview-length",
            type=int,
            default=200,
            help="Characters of the value's repr to show (default: 200).",
        )
        parser.add_argument(
            "--no-value",
            action="store_false",
            dest="value",
            help="Do not read the value (the preview's read counts as a hit).",
        )
        parser.add_argument("--json", action="store_true", help="Print a JSON object instead.")

    def handle(self, *args: Any, **options: Any) -> None:
        key: str = options["key"]
        length: int = options["preview_length"]
        if length < 1:
            raise CommandError("--preview-length must be at least 1")
        (info,) = for_command(options["alias"])
        if info.misconfigured is not None:
            raise CommandError(f"the cache alias {info.alias!r} is {info.misconfigured}")
        if info.core is None:
            raise CommandError(
                f"the cache alias {info.alias!r} is not a cachekit backend ({info.backend}); "
                "only cachekit backends can describe their entries"
            )
        cache: Any = info.cache
        version: int | None = options["key_version"]
        try:
            stored_key: str = cache.make_and_validate_key(key, version=version)
            entry = info.core.inspect(stored_key)
        except (cachekit.CacheError, ValueError) as exc:
            raise CommandError(f"{type(exc).__name__}: {exc}") from exc
        if entry is None:
            raise CommandError(
                f"no entry for {key!r} in {info.alias!r} (stored key {stored_key!r})"
            )

        value_text: str | None = None
        value_type = entry.value_type
        if getattr(cache, "_freeze", False):  # the memory backend's own stored forms
            value_type = _FROZEN.get(value_type, value_type)
        if options["value"]:
            value = cache.get(key, _ABSENT, version=version)
            if value is _ABSENT:
                value_text = "(expired since)"
            else:  # the type the application gets back, past any wrapping the backend stores
                value_text, value_type = preview(value, length), type(value).__name__

        if options["json"]:
            data = {
                "alias": info.alias,
                "provider": info.core.provider_name,
                "key": key,
                "stored_key": stored_key,
                "value_type": value_type,
                "ttl": entry.ttl,
                "size": entry.size,
                "serializer": entry.serializer,
                "compression": entry.compression,
                "preview": value_text,
            }
            self.stdout.write(json.dumps(data, indent=2))
            return

        ttl = "never expires" if entry.ttl is None else f"{entry.ttl:.1f} s"
        serializer = entry.serializer or "none (stored as a Python object)"
        rows = [
            ("key", key),
            ("stored key", stored_key),
            ("alias", f"{info.alias} ({info.core.provider_name})"),
            ("type", value_type),
            ("ttl", ttl),
            ("size", format_bytes(entry.size)),
            ("serializer", serializer),
            ("compression", entry.compression or "none"),
        ]
        if value_text is not None:
            rows.append(("value", value_text))
        if options["verbosity"] < 1:
            rows = [row for row in rows if row[0] in {"ttl", "size", "value"}]
        width = max(len(label) for label, _ in rows)
        for label, text in rows:
            self.stdout.write(f"{label.ljust(width)}  {text}")
