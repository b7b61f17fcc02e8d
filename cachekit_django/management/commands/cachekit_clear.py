"""``manage.py cachekit_clear``: empty a cache alias, or only the keys of a pattern or tags.

Patterns are Django keys (``user:*``), turned into the backend's stored-key glob with its
``KEY_PREFIX`` and version, so they select what ``cache.get("user:1")`` reads. Any Django cache
can be cleared whole; patterns and tags need a cachekit backend, since Django's own have no way
to do either.

Aliases that differ only in ``KEY_PREFIX`` (or ``VERSION``) share one core cache, whose
``clear()`` would empty them all. Clearing such an alias whole while another alias on its core
is not being cleared removes only its own keys (its ``KEY_PREFIX`` and ``VERSION``, as
``--pattern '*'`` would), and is refused, before anything is removed, where the provider cannot
delete by pattern (memcached).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import cachekit

from ...shared import sharing
from ..aliases import AliasInfo, aliases, for_command, scan_all

_LISTED_KEYS = 50  # keys a --dry-run lists at verbosity 2 before "... and N more"


class Command(BaseCommand):
    help = (
        "Remove every key of a cache alias (all aliases without --alias), or only the keys "
        "matching --pattern or carrying --tag. --dry-run reports what would go."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--alias", help="Only this alias of settings.CACHES.")
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--pattern",
            help="Glob over Django keys (*, ?, [abc]), e.g. 'user:*'. Needs a cachekit backend.",
        )
        which.add_argument(
            "--tag",
            action="append",
            dest="tags",
            metavar="TAG",
            help="Remove the keys carrying this tag (repeatable). Needs a cachekit backend.",
        )
        parser.add_argument(
            "--key-version",
            type=int,
            help="With --pattern: the key version to match (default: the alias's VERSION).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be removed; remove nothing."
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not ask for confirmation.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        pattern: str | None = options["pattern"]
        tags: list[str] | None = options["tags"]
        version: int | None = options["key_version"]
        if pattern is not None and not pattern:
            raise CommandError("--pattern must not be empty (use no --pattern to clear all)")
        if tags is not None and not all(tags):
            raise CommandError("--tag must not be empty")
        if version is not None and pattern is None:
            raise CommandError("--key-version only applies to --pattern")

        infos = for_command(options["alias"])
        # Every refusal comes before anything is removed, and the same for --dry-run: a run
        # that stopped at its third alias would leave the first two cleared.
        broken = [f"{info.alias}: {info.misconfigured}" for info in infos if info.misconfigured]
        if broken:
            raise CommandError("; ".join(broken))
        if pattern is not None or tags is not None:
            plain = [info.alias for info in infos if not info.is_cachekit]
            if plain:
                raise CommandError(
                    f"--pattern and --tag need cachekit backends; not one: {', '.join(plain)} "
                    "(pick a cachekit alias with --alias, or clear it whole)"
                )
            unable = [
                reason
                for info in infos
                if (reason := _cannot(info, pattern, tags, version)) is not None
            ]
            if unable:
                raise CommandError(
                    "; ".join(unable) + " (nothing was removed; pick the aliases that can with "
                    "--alias, or clear them whole)"
                )
        # Clear-all of an alias whose core another alias (not being cleared) shares: only its
        # own keys. {alias: the aliases it shares with}
        scoped: dict[str, tuple[str, ...]] = {}
        if pattern is None and tags is None:
            clearing = {info.alias for info in infos}
            shared = sharing({info.alias: info.core for info in aliases()})
            for info in infos:
                others = tuple(o for o in shared.get(info.alias, ()) if o not in clearing)
                if not others:
                    continue
                cache: Any = info.cache
                try:
                    cache._distributed_core("delete by pattern")  # UnsupportedOperation if not
                    cache.make_pattern("*")
                except cachekit.UnsupportedOperation as exc:
                    raise CommandError(
                        f"{info.alias!r} shares its cache with {_names(others)} (only KEY_PREFIX "
                        f"or VERSION differs): clearing it would clear them too, and {exc}. "
                        "Clear them together (no --alias), or give the alias its own LOCATION."
                    ) from exc
                scoped[info.alias] = others
        if pattern is not None:
            what = f"the keys matching {pattern!r}"
        elif tags is not None:
            what = f"the keys tagged {', '.join(map(repr, tags))}"
        else:
            what = "every key"

        verbosity: int = options["verbosity"]
        if options["dry_run"]:
            for info in infos:
                self._dry_run(
                    info,
                    what,
                    pattern,
                    tags,
                    version=version,
                    verbosity=verbosity,
                    shared_with=scoped.get(info.alias, ()),
                )
            return

        if options["interactive"]:
            names = ", ".join(repr(info.alias) for info in infos)
            try:
                answer = input(
                    f"This will remove {what} from the cache alias(es) {names}.\n"
                    "Are you sure you want to do this?\n\n"
                    "    Type 'yes' to continue, or 'no' to cancel: "
                )
            except EOFError:
                # No one to answer (cron, CI, a pipe): cancelled, saying how to go without asking.
                self.stdout.write("")
                raise CommandError(
                    "cancelled: the confirmation prompt got no answer (end of input); pass "
                    "--noinput to clear without asking"
                ) from None
            if answer != "yes":
                self.stdout.write("Cancelled.")
                return

        for info in infos:
            cache: Any = info.cache  # a cachekit backend whenever a pattern or tags are given
            try:
                if pattern is not None:
                    removed = cache.delete_pattern(pattern, version=version)
                elif info.alias in scoped:
                    removed = cache.delete_pattern("*")
                elif tags is not None:
                    removed = cache.invalidate_tags(tags)
                else:
                    cache.clear()
                    removed = None
            except cachekit.CacheError as exc:
                raise CommandError(f"{info.alias}: {type(exc).__name__}: {exc}") from exc
            if verbosity >= 1:
                if removed is None:
                    self.stdout.write(self.style.SUCCESS(f"Cleared {info.alias!r}."))
                else:
                    note = ""
                    if info.alias in scoped:
                        others = _names(scoped[info.alias])
                        note = f" (only its own keys: its cache is shared with {others})"
                    self.stdout.write(
                        self.style.SUCCESS(f"Removed {removed} key(s) from {info.alias!r}{note}.")
                    )

    def _dry_run(
        self,
        info: AliasInfo,
        what: str,
        pattern: str | None,
        tags: list[str] | None,
        *,
        version: int | None,
        verbosity: int,
        shared_with: tuple[str, ...] = (),
    ) -> None:
        keys: list[str] | None = None
        reason = ""
        if info.core is None:
            reason = f"{info.backend} cannot list its keys"
        else:
            cache: Any = info.cache
            try:
                if tags is not None:
                    namespaced = cache._tags(tags)  # UnsupportedOperation without tags
                    keys = info.core.tagged_keys(namespaced)
                else:
                    if pattern is not None:
                        glob = cache.make_pattern(pattern, version=version)
                    else:  # a core shared with another alias: only this one's keys
                        glob = cache.make_pattern("*") if shared_with else "*"
                    keys = scan_all(info.core, glob)
            except cachekit.UnsupportedOperation:
                what_cannot = "a tag's keys" if tags is not None else "its keys"
                reason = f"the {info.core.provider_name} provider cannot list {what_cannot}"
            except cachekit.CacheError as exc:
                raise CommandError(f"{info.alias}: {type(exc).__name__}: {exc}") from exc
        if verbosity < 1:
            return
        if shared_with:  # not "every key": the core's other aliases keep theirs
            what = f"only its own keys: its cache is shared with {_names(shared_with)}"
        if keys is None:
            self.stdout.write(f"Would remove {what} from {info.alias!r} (not counted: {reason}).")
            return
        self.stdout.write(f"Would remove {len(keys)} key(s) from {info.alias!r} ({what}).")
        if verbosity >= 2:
            for key in sorted(keys)[:_LISTED_KEYS]:
                self.stdout.write(f"  {key}")
            if len(keys) > _LISTED_KEYS:
                self.stdout.write(f"  ... and {len(keys) - _LISTED_KEYS} more")


def _cannot(
    info: AliasInfo, pattern: str | None, tags: list[str] | None, version: int | None
) -> str | None:
    """Why ``info`` would refuse this --pattern/--tag run (the real run's own error), or None.

    Asks the backend the questions its ``delete_pattern``/``invalidate_tags`` ask first, none
    of which touch the server: a provider without patterns or tags (memcached, a file cache)
    or a ``KEY_FUNCTION`` that hides the key (hashing) fails here instead of mid-run.
    """
    cache: Any = info.cache
    try:
        if pattern is not None:
            cache._distributed_core("delete by pattern")
            cache.make_pattern(pattern, version=version)
        else:
            cache._distributed_core("invalidate tags")
            cache._tags(tags)
    except cachekit.CacheError as exc:
        return f"{info.alias}: {type(exc).__name__}: {exc}"
    return None


def _names(aliases: tuple[str, ...]) -> str:
    return ", ".join(repr(alias) for alias in aliases)
