"""Tag invalidation on model changes: when a model instance is saved or deleted, the cache
entries tagged for it are removed (``post_save``/``post_delete``), after the transaction commits
so a concurrent request cannot cache the old row again before the new one is visible.

Declare it per model, with the decorator::

    @invalidates_tags("catalog", "product:{pk}", cache="default")
    class Product(models.Model): ...

or in settings (connected when the app is ready)::

    CACHEKIT_INVALIDATE_TAGS = {
        "shop.Product": ["catalog", "product:{pk}"],
        "shop.Review": {"tags": ["reviews:{instance.product_id}"], "cache": "pages"},
    }

A tag is a ``str.format`` template (fields ``pk`` and ``instance``) or a callable
``(instance) -> str | iterable of str``. Views cache with the same tags::

    cache.set(f"product:{pk}:page", html, tags=["catalog", f"product:{pk}"])

A rule covers the model's proxies and subclasses too (Django sends their class as the signal's
sender). The row is committed by the time the tags are invalidated, so an outage then (the
cache's server down: ``BackendUnavailable``) is logged, at most once per ``LOG_INTERVAL`` per
cache, not raised: raising would turn a successful save into a 500. Any other error is a
mistake and raises: a tag the rule computes badly from the save itself (before the commit,
which it rolls back), a cache without tags after it. The tag cache alias itself
is checked at start-up (``cachekit_django.E006``).

Batching. ``QuerySet.delete()`` sends ``post_delete`` once per row, inside the transaction
``Collector.delete`` opens, and one invalidation per row cost N round trips to the cache at
commit. Rows now join the open :class:`_Batch` of their cache in their transaction (the union
of their tags, computed per row at signal time), and each row still queues an ``on_commit``
callback of its own; the first of them to run invalidates the whole batch in one call and the
others find nothing left to do. A row's own callback is what guarantees its tags: when a
savepoint rollback discards some callbacks, a surviving one still flushes its rows, and rows of
a rolled-back savepoint may be invalidated with their batch-mates, which costs cache misses,
never a stale entry. Django's ``captureOnCommitCallbacks`` sees every row's callback, as before.
A batch belongs to one ``run_on_commit`` list: Django replaces the list when the transaction
ends and when a savepoint rolls back, and a new list starts a new batch (so a transaction that
rolled back savepoints costs one more round trip for each). Outside a transaction
``on_commit`` runs at once: each change is invalidated before ``save()`` returns.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.apps import apps
from django.db import models, router, transaction
from django.db.models.signals import class_prepared, post_delete, post_save

from cachekit.errors import BackendUnavailable
from cachekit.interfaces import check_tags

__all__ = [
    "SettingsError",
    "TagRule",
    "connect_from_settings",
    "invalidate_tags_on_change",
    "invalidates_tags",
    "parse_settings",
    "tag_rules",
]

logger = logging.getLogger(__name__)


@dataclass
class _Connected:
    """A rule as connected: its receiver and every sender it is connected for (the model, its
    proxies and subclasses)."""

    model: type[models.Model]
    rule: TagRule
    receiver: Callable[..., None]
    uid: str
    senders: list[type[models.Model]]

    def connect(self, sender: type[models.Model]) -> None:
        signals = (post_save, post_delete) if _shares_rows(sender, self.model) else (post_save,)
        for signal in signals:
            signal.connect(self.receiver, sender=sender, weak=False, dispatch_uid=self.uid)
        self.senders.append(sender)

    def disconnect(self) -> None:
        for sender in self.senders:
            for signal in (post_save, post_delete):
                signal.disconnect(sender=sender, dispatch_uid=self.uid)
        self.senders.clear()


def _shares_rows(sender: type[models.Model], model: type[models.Model]) -> bool:
    """Whether ``sender`` is ``model`` or a proxy of it, whose deletes send ``post_delete``
    with ``sender`` alone. A multi-table child's delete also deletes its parent row, whose own
    ``post_delete`` the rule already hears: a child joins for its saves only (Django saves
    parents without signals), or each delete would invalidate twice."""
    return sender._meta.concrete_model is model._meta.concrete_model


#: Every connected rule by ``(model label, cache alias)``: the system check validates their
#: cache aliases (decorator-declared ones included), and subclasses defined later join them.
_RULES: dict[tuple[str, str], _Connected] = {}

Tag = str | Callable[[Any], "str | Iterable[str]"]
M = TypeVar("M", bound=type[models.Model])


class SettingsError(ValueError):
    """``CACHEKIT_INVALIDATE_TAGS`` is malformed (reported as system check E005)."""


@dataclass(frozen=True)
class TagRule:
    """The tags to invalidate for one model, in one cache alias."""

    tags: tuple[Tag, ...]
    cache: str = "default"

    def tags_for(self, instance: Any) -> list[str]:
        out: list[str] = []
        for tag in self.tags:
            if callable(tag):
                produced = tag(instance)
                out.extend([produced] if isinstance(produced, str) else produced)
            else:
                out.append(tag.format(pk=instance.pk, instance=instance))
        return out

    def invalidate(self, instance: Any, using: str | None) -> None:
        """Invalidate this instance's tags when the transaction on ``using`` commits. Tags are
        checked here, in the save: a rule's mistake found in the batch after commit would
        cost every row of the transaction its invalidation."""
        tags = self.tags_for(instance)
        if tags:
            check_tags(tags)
            _schedule(self.cache, using, tags, type(instance)._meta.label, instance.pk)


@dataclass(eq=False)
class _Batch:
    """The tags of one cache pending in one transaction (see the module's docstring)."""

    alias: str
    cache: Any
    #: The connection's ``run_on_commit`` list when the batch began (``None``: no transaction).
    hooks: list[Any] | None
    tags: dict[str, None] = field(default_factory=dict)
    labels: dict[str, None] = field(default_factory=dict)
    rows: int = 0
    first_pk: Any = None

    def add(self, tags: list[str], label: str, pk: Any) -> None:
        self.tags.update(dict.fromkeys(tags))
        self.labels[label] = None
        if not self.rows:
            self.first_pk = pk
        self.rows += 1

    def flush(self) -> None:
        """Each row's ``on_commit`` callback: invalidate every tag still pending."""
        if not self.rows:
            return
        tags = list(self.tags)
        labels, rows, first_pk = list(self.labels), self.rows, self.first_pk
        self.tags, self.labels, self.rows = {}, {}, 0
        try:
            self.cache.invalidate_tags(tags)
        except BackendUnavailable as exc:  # an outage; a mistake in the rule still raises
            _report_outage(self.alias, tags, labels, rows, first_pk, exc)


#: Per database connection, the open batch of each cache alias. Connections are per thread (and
#: per async context), so an entry is only used by the thread running its transaction; weak, so
#: a closed thread's connection takes its entry with it. A rolled-back transaction's batch stays
#: here, unused, until that connection's next change replaces it.
_open: weakref.WeakKeyDictionary[Any, dict[str, _Batch]] = weakref.WeakKeyDictionary()
_open_lock = threading.Lock()


def _schedule(alias: str, using: str | None, tags: list[str], label: str, pk: Any) -> None:
    """Add ``tags`` to the open batch of ``alias`` in the transaction on ``using`` and queue
    this row's callback (outside a transaction ``on_commit`` runs it at once)."""
    from django.core.cache import caches

    cache = caches[alias]  # an unknown alias raises here, in the save, as Django would
    connection = transaction.get_connection(using)
    hooks = getattr(connection, "run_on_commit", None) if connection.in_atomic_block else None
    if isinstance(hooks, list):
        with _open_lock:
            batches = _open.setdefault(connection, {})
            batch = batches.get(alias)
            if batch is None or batch.hooks is not hooks or batch.cache is not cache:
                batch = batches[alias] = _Batch(alias, cache, hooks)
    else:  # no transaction (or a Django without run_on_commit): a batch of one row
        batch = _Batch(alias, cache, None)
    batch.add(tags, label, pk)
    transaction.on_commit(batch.flush, using=using)


#: Seconds between two reports of tag invalidations lost to an outage, per cache alias: every
#: transaction committed during the outage fails, and a line each would bury the first.
LOG_INTERVAL = 10.0
_reports: dict[str, tuple[float, int]] = {}
_reports_lock = threading.Lock()


#: Tags named in a report of a lost invalidation; a bulk delete's batch may hold thousands.
_TAGS_SHOWN = 10


def _report_outage(  # noqa: PLR0917 - what the one log line says
    alias: str, tags: list[Any], labels: list[str], rows: int, first_pk: Any, exc: Exception
) -> None:
    now = time.monotonic()
    with _reports_lock:
        last, unreported = _reports.get(alias, (float("-inf"), 0))
        if now - last < LOG_INTERVAL:
            _reports[alias] = (last, unreported + 1)
            return
        _reports[alias] = (now, 0)
    shown = repr(tags[:_TAGS_SHOWN])
    if len(tags) > _TAGS_SHOWN:
        shown = f"{shown[:-1]}, ... {len(tags)} in all]"
    which = f"pk={first_pk!r}" if rows == 1 else f"{rows} rows, first pk={first_pk!r}"
    logger.error(
        "cachekit: could not invalidate tags %s of %s (%s) in cache %r (and %d more since "
        "the last report); the rows are saved, entries with these tags may be stale until "
        "they expire: %s",
        shown,
        ", ".join(labels),
        which,
        alias,
        unreported,
        exc,
    )


def _check_tags(tags: Iterable[Any], where: str) -> tuple[Tag, ...]:
    if isinstance(tags, str):
        raise SettingsError(f"{where}: tags must be a list, not a bare str {tags!r}")
    checked = tuple(tags)
    if not checked:
        raise SettingsError(f"{where}: give at least one tag")
    for tag in checked:
        if not (callable(tag) or (isinstance(tag, str) and tag)):
            raise SettingsError(
                f"{where}: a tag is a non-empty str template or a callable, got {tag!r}"
            )
    return checked


def invalidate_tags_on_change(
    model: type[models.Model], tags: Iterable[Tag], *, cache: str = "default"
) -> TagRule:
    """Invalidate ``tags`` in ``caches[cache]`` whenever an instance of ``model`` is saved or
    deleted; returns the rule (connecting the same model and cache twice replaces the first)."""
    rule = TagRule(_check_tags(tags, model.__name__), cache)

    def receiver(sender: Any, instance: Any, using: str | None = None, **kwargs: Any) -> None:
        rule.invalidate(instance, using or router.db_for_write(sender, instance=instance))

    key = (model._meta.label, cache)
    uid = f"cachekit_django:{model._meta.label}:{cache}"
    previous = _RULES.pop(key, None)
    if previous is not None:
        previous.disconnect()
    for signal in (post_save, post_delete):
        signal.disconnect(sender=model, dispatch_uid=uid)
    # Django sends a proxy's or a subclass's own class, never its parent's: each one is
    # connected by sender (the ones defined so far here, later ones by class_prepared), rather
    # than one sender-less receiver, which would cost every model's QuerySet.delete() its
    # fast path (Django fetches the rows of any model with post_delete listeners).
    connected = _Connected(model, rule, receiver, uid, [])
    connected.connect(model)
    for app_models in list(apps.all_models.values()):
        for other in list(app_models.values()):
            if other is not model and issubclass(other, model):
                connected.connect(other)
    _RULES[key] = connected
    return rule


def _connect_subclass(sender: type[models.Model], **kwargs: Any) -> None:
    """``class_prepared``: a model defined after a rule of one of its bases joins that rule.

    Only models of the project's registry: a throw-away registry's (``isolate_apps``, models
    built at run time) would be kept alive by the connection for ever."""
    if sender._meta.apps is not apps:
        return
    for connected in list(_RULES.values()):
        if issubclass(sender, connected.model) and sender not in connected.senders:
            connected.connect(sender)


class_prepared.connect(_connect_subclass, weak=False, dispatch_uid="cachekit_django:subclasses")


def tag_rules() -> list[tuple[type[models.Model], TagRule]]:
    """Every connected rule with its model (settings, decorator and function forms)."""
    return [(connected.model, connected.rule) for connected in _RULES.values()]


def invalidates_tags(*tags: Tag, cache: str = "default") -> Callable[[M], M]:
    """Class decorator form of :func:`invalidate_tags_on_change`."""

    def decorate(model: M) -> M:
        invalidate_tags_on_change(model, tags, cache=cache)
        return model

    return decorate


def parse_settings(value: Any) -> dict[str, TagRule]:
    """``CACHEKIT_INVALIDATE_TAGS`` as ``{model label: TagRule}``; raises :class:`SettingsError`."""
    if not isinstance(value, Mapping):
        raise SettingsError(f"CACHEKIT_INVALIDATE_TAGS must be a dict, got {type(value).__name__}")
    rules: dict[str, TagRule] = {}
    for label, spec in value.items():
        if not isinstance(label, str) or label.count(".") != 1:
            raise SettingsError(f"model labels look like 'app_label.Model', got {label!r}")
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"tags", "cache"}
            if unknown:
                raise SettingsError(f"{label}: unknown keys {sorted(unknown)} (use tags, cache)")
            cache = spec.get("cache", "default")
            if not isinstance(cache, str):
                raise SettingsError(f"{label}: cache must be an alias (str), got {cache!r}")
            rules[label] = TagRule(_check_tags(spec.get("tags", ()), label), cache)
        else:
            rules[label] = TagRule(_check_tags(spec, label))
    return rules


def connect_from_settings() -> list[TagRule]:
    """Connect the rules of ``settings.CACHEKIT_INVALIDATE_TAGS`` (the app's ``ready()``).

    Malformed settings are left to the system check (E005) instead of failing start-up here;
    an unknown model label raises ``LookupError``, as Django does for a bad label."""
    from django.apps import apps
    from django.conf import settings

    try:
        rules = parse_settings(getattr(settings, "CACHEKIT_INVALIDATE_TAGS", {}))
    except SettingsError:
        return []
    connected = []
    for label, rule in rules.items():
        model = apps.get_model(label)
        connected.append(invalidate_tags_on_change(model, rule.tags, cache=rule.cache))
    return connected
