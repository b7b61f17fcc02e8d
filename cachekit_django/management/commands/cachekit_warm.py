"""``manage.py cachekit_warm``: fill the caches before traffic arrives.

``--urls FILE`` requests each URL through Django's own request handling (the test ``Client``,
which runs the project's middleware and views in-process, with no server or socket), so
``cache_page`` views and ``{% cache %}`` fragments get stored exactly as a visitor would store
them. ``cache_page`` keys include the host and scheme, so each line should be the absolute URL
visitors use (``https://shop.example.com/products/``); bare paths use ``--host``.

``--callable dotted.path`` imports a function and calls it with the alias's cache; if it returns
an iterable, each item is one unit of progress (a generator can ``yield`` as it fills keys).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sized
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.test import Client
from django.utils.module_loading import import_string

import cachekit

from ..aliases import for_command

_BAR_WIDTH = 30


class ProgressBar:
    """A one-line progress bar on a terminal, silent otherwise (logs and CI stay clean)."""

    def __init__(self, out: OutputWrapper, total: int | None, *, enabled: bool) -> None:
        self.out = out
        self.total = total
        self.enabled = enabled and out.isatty()
        self.done = 0

    def advance(self, label: str = "") -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.total:
            filled = _BAR_WIDTH * self.done // self.total
            bar = "#" * filled + "." * (_BAR_WIDTH - filled)
            text = f"\r[{bar}] {self.done}/{self.total} {label}"
        else:
            text = f"\r{self.done} {label}"
        self.out.write(text[:120].ljust(120), ending="")
        self.out.flush()

    def finish(self) -> None:
        if self.enabled:
            self.out.write("")


def read_urls(path: str) -> list[str]:
    """Non-blank lines of ``path`` that are not ``#`` comments, every one checked first.

    A file that cannot be read or decoded, or any line that is not an http(s) URL or a path, is
    a ``CommandError`` listing every bad line before anything is requested, rather than a
    traceback or a stop halfway through a warm-up.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read --urls file {path!r}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CommandError(f"--urls file {path!r} is not UTF-8 text: {exc}") from exc
    urls: list[str] = []
    bad: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        url = line.strip()
        if not url or url.startswith("#"):
            continue
        try:
            scheme = urlsplit(url).scheme
        except ValueError as exc:  # an unclosed IPv6 bracket, a bad character in the host...
            bad.append(f"line {number}: {url!r} ({exc})")
            continue
        if scheme not in ("", "http", "https"):
            bad.append(f"line {number}: {url!r} (not an http(s) URL)")
            continue
        urls.append(url)
    if bad:
        raise CommandError(
            f"--urls file {path!r} has {len(bad)} bad line(s), nothing was requested: "
            + "; ".join(bad)
        )
    if not urls:
        raise CommandError(f"--urls file {path!r} lists no URL")
    return urls


def default_host() -> str:
    """The first concrete name in ALLOWED_HOSTS (what a visitor's Host header would carry)."""
    for host in settings.ALLOWED_HOSTS:
        if host and host != "*" and not host.startswith("."):
            return str(host)
    return "localhost"


class Command(BaseCommand):
    help = (
        "Warm the caches: request every URL of --urls FILE through Django (so cache_page and "
        "fragment caches fill), or call --callable with the alias's cache."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--alias", default="default", help="Cache alias (default: default).")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--urls", metavar="FILE", help="A file of URLs, one per line.")
        source.add_argument(
            "--callable",
            metavar="DOTTED.PATH",
            help="A function called with the cache, e.g. 'shop.cache.warm_catalog'.",
        )
        parser.add_argument(
            "--host",
            help="Host for bare paths in --urls (default: the first name in ALLOWED_HOSTS).",
        )
        parser.add_argument(
            "--no-progress", action="store_false", dest="progress", help="Never draw a bar."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        (info,) = for_command(options["alias"])
        before = _writes(info.cache)
        started = time.perf_counter()
        if options["urls"]:
            count: int | None = self._warm_urls(options)
        else:
            count = self._warm_callable(info.cache, options)
        elapsed = time.perf_counter() - started
        if options["verbosity"] >= 1:
            after = _writes(info.cache)
            what = "Warmed" if count is None else f"Warmed {count} item(s)"
            writes = "" if before is None or after is None else f", {after - before} write(s)"
            self.stdout.write(
                self.style.SUCCESS(f"{what} in {elapsed:.2f} s ({info.alias!r}{writes}).")
            )

    def _warm_urls(self, options: dict[str, Any]) -> int:
        urls = read_urls(options["urls"])
        host = options["host"] or default_host()
        client = Client(raise_request_exception=False)
        bar = ProgressBar(self.stdout, len(urls), enabled=options["progress"])
        failed: list[str] = []
        for url in urls:
            parts = urlsplit(url)  # read_urls checked every line
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            response = client.get(
                path,
                headers={"host": parts.netloc or host},
                secure=parts.scheme == "https",
            )
            if response.status_code >= 400:
                failed.append(f"{url} ({response.status_code})")
            elif options["verbosity"] >= 2:
                self.stdout.write(f"{response.status_code} {url}")
            bar.advance(url)
        bar.finish()
        if failed:
            raise CommandError(f"{len(failed)} of {len(urls)} URL(s) failed: {', '.join(failed)}")
        return len(urls)

    def _warm_callable(self, cache: Any, options: dict[str, Any]) -> int | None:
        """The function's int result, the items it yielded, or ``None`` if it says nothing."""
        path: str = options["callable"]
        try:
            function = import_string(path)
        except ImportError as exc:
            raise CommandError(f"cannot import --callable {path!r}: {exc}") from exc
        if not callable(function):
            raise CommandError(f"--callable {path!r} is not callable")
        # A cache error (its server down), from the call or while it yields, is the command's
        # failure, as it is for --urls; other exceptions are bugs of the function: traceback.
        try:
            result = function(cache)
            if isinstance(result, int) and not isinstance(result, bool):
                return result
            if isinstance(result, Iterable) and not isinstance(result, (str, bytes, dict)):
                total = len(result) if isinstance(result, Sized) else None
                bar = ProgressBar(self.stdout, total, enabled=options["progress"])
                try:
                    for item in result:
                        bar.advance(str(item))
                finally:
                    bar.finish()
                return bar.done
        except cachekit.CacheError as exc:
            raise CommandError(f"--callable {path!r} failed: {type(exc).__name__}: {exc}") from exc
        return None


def _writes(cache: Any) -> int | None:
    """Writes counted by a cachekit backend so far (``None`` for other backends)."""
    get_stats = getattr(cache, "get_stats", None)
    if not callable(get_stats) or getattr(cache, "cachekit", None) is None:
        return None
    return int(get_stats().sets)
