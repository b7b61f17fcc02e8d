"""Tag invalidation on model changes costs one round trip per transaction and cache, not one per
row (a ``QuerySet.delete()`` of N rows made N); a misconfigured alias's tag operations raise its
configuration error. Real Redis, real commits (``transaction=True``)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.cache import caches
from django.db import connections, transaction
from django.db.utils import load_backend
from django.test import override_settings

from cachekit.errors import InvalidArgumentType
from cachekit.testing.servers import RedisServer, free_port
from cachekit_django import signals
from cachekit_django.cache import InvalidCacheConfiguration
from cachekit_django.signals import invalidates_tags

pytestmark = pytest.mark.servers

OTHER_DB = "s11other"


def by_name(group: Group) -> list[str]:
    return [f"name:{group.name}"]


@pytest.fixture
def tag_cache(redis_server: RedisServer) -> Iterator[Any]:
    """A Redis alias ``tags`` and a rule on Group invalidating, per row, tags that differ
    (``group:{pk}``, its name) and one they share (``groups``)."""
    entry = {
        "BACKEND": "cachekit_django.cache.RedisCache",
        "LOCATION": redis_server.url,
        "KEY_PREFIX": "s11batch",
    }
    with override_settings(CACHES={**settings.CACHES, "tags": entry}):
        cache = caches["tags"]
        cache.clear()
        invalidates_tags("groups", "group:{pk}", by_name, cache="tags")(Group)
        try:
            yield cache
        finally:
            for key in [key for key in signals._RULES if key[0] == "auth.Group"]:
                signals._RULES.pop(key).disconnect()
            cache.clear()


@pytest.fixture
def scripts(redis_server: RedisServer, tag_cache: Any) -> Callable[[], int]:
    """Zeroes Redis's command statistics and gives ``count()``: how many scripts (EVAL,
    EVALSHA) the server has run since. An invalidation is one, and so is a tagged write."""
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    tag_cache.invalidate_tags(["warm-up"])  # loads the script: no NOSCRIPT retry counted
    client.config_resetstat()

    def count() -> int:
        stats = client.info("commandstats")
        return sum(
            int(stats.get(f"cmdstat_{name}", {}).get(field, 0))
            for name in ("eval", "evalsha")
            for field in ("calls", "rejected_calls")
        )

    return count


def make_groups(cache: Any, count: int, prefix: str = "g") -> list[Group]:
    """``count`` groups (bulk_create: no signals), each with an entry tagged by its pk and
    one by its name."""
    groups = Group.objects.bulk_create(Group(name=f"{prefix}{i}") for i in range(count))
    groups = list(Group.objects.filter(name__in=[g.name for g in groups]).order_by("pk"))
    for group in groups:
        cache.set(f"page:{group.pk}", 1, tags=[f"group:{group.pk}"])
        cache.set(f"by-name:{group.name}", 1, tags=[f"name:{group.name}"])
    cache.set("list", 1, tags=["groups"])
    cache.set("unrelated", 1, tags=["other"])
    return groups


class Rollback(Exception):
    pass


def rolled_back(change: Callable[[], Any]) -> None:
    """``change()`` in an atomic block (a savepoint when nested) that then rolls back."""
    try:
        with transaction.atomic():
            change()
            raise Rollback
    except Rollback:
        pass


def entries(cache: Any, groups: list[Group]) -> list[str]:
    """The per-row and shared entries still cached."""
    keys = ["list"]
    for group in groups:
        keys += [f"page:{group.pk}", f"by-name:{group.name}"]
    return sorted(cache.get_many(keys))


@pytest.mark.django_db(transaction=True)
def test_a_bulk_delete_invalidates_every_rows_tags_in_one_round_trip(
    tag_cache: Any, scripts: Callable[[], int]
) -> None:
    groups = make_groups(tag_cache, 200)
    assert len(entries(tag_cache, groups)) == 401
    before = scripts()
    deleted, _ = Group.objects.filter(name__startswith="g").delete()
    assert deleted >= 200
    assert scripts() - before == 1  # was 200: one EVALSHA per row
    assert entries(tag_cache, groups) == []
    assert tag_cache.get("unrelated") == 1


@pytest.mark.django_db(transaction=True)
def test_changes_in_a_users_transaction_invalidate_once_when_it_commits(
    tag_cache: Any, scripts: Callable[[], int]
) -> None:
    gone = make_groups(tag_cache, 100, "gone")
    kept = make_groups(tag_cache, 20, "kept")
    before = scripts()
    with transaction.atomic():
        Group.objects.filter(name__startswith="gone").delete()
        for group in kept:
            with transaction.atomic():  # a savepoint per row: still the same batch
                group.save()
        assert len(entries(tag_cache, gone + kept)) == 241  # not before the commit
        assert scripts() == before
    assert scripts() - before == 1
    assert entries(tag_cache, gone + kept) == []


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_invalidates_nothing(
    tag_cache: Any, scripts: Callable[[], int]
) -> None:
    groups = make_groups(tag_cache, 50)
    before = scripts()

    def change() -> None:
        Group.objects.filter(name__startswith="g").delete()
        groups[0].save()

    rolled_back(change)
    assert Group.objects.filter(name__startswith="g").count() == 50
    assert scripts() == before
    assert len(entries(tag_cache, groups)) == 101
    # The next transaction starts a batch of its own (none of the rolled-back tags in it).
    with transaction.atomic():
        groups[1].save()
    assert scripts() - before == 1
    assert entries(tag_cache, groups) == sorted(
        key for g in groups if g != groups[1] for key in (f"page:{g.pk}", f"by-name:{g.name}")
    )


@pytest.mark.django_db(transaction=True)
def test_rows_changed_after_a_rolled_back_savepoint_are_still_invalidated(
    tag_cache: Any, scripts: Callable[[], int]
) -> None:
    """The batch begun inside the savepoint is discarded with it: later rows must not join it."""
    first, second, third = make_groups(tag_cache, 3)
    with transaction.atomic():
        rolled_back(first.save)
        second.save()
        with transaction.atomic():
            third.delete()
    remaining = entries(tag_cache, [first, second, third])
    assert remaining == [f"by-name:{first.name}", f"page:{first.pk}"]


@pytest.mark.django_db(transaction=True)
def test_saves_outside_a_transaction_invalidate_at_once_each(
    tag_cache: Any, scripts: Callable[[], int]
) -> None:
    """post_save in autocommit mode is unchanged: invalidated before save() returns."""
    first, second = make_groups(tag_cache, 2)
    before = scripts()
    first.save()
    assert tag_cache.get(f"page:{first.pk}") is None
    assert tag_cache.get(f"page:{second.pk}") == 1
    assert scripts() - before == 1
    tag_cache.set("list", 1, tags=["groups"])
    before = scripts()  # the set ran a script too
    second.name = "renamed"
    second.save()  # the tags of the row as saved: its new name
    assert tag_cache.get(f"page:{second.pk}") is None
    assert tag_cache.get("by-name:g1") == 1
    assert tag_cache.get("list") is None
    assert scripts() - before == 1


@pytest.mark.django_db(transaction=True)
def test_two_caches_and_a_callback_of_the_users_between_rows_still_batch(
    tag_cache: Any, scripts: Callable[[], int]
) -> None:
    """Batches are found by connection and cache, not by being the last callback queued."""
    pages = caches["default"]
    pages.set("all", 1, tags=["all-groups"])
    invalidates_tags("all-groups", cache="default")(Group)
    groups = make_groups(tag_cache, 30)
    ran: list[int] = []
    before = scripts()
    with transaction.atomic():
        for group in groups:
            group.save()
            transaction.on_commit(lambda pk=group.pk: ran.append(pk))
    assert scripts() - before == 1
    assert ran == [g.pk for g in groups]
    assert entries(tag_cache, groups) == []
    assert pages.get("all") is None


@pytest.fixture
def other_db() -> Iterator[str]:
    """A second in-memory SQLite database with Group's table: a connection made here, not in
    settings (pytest-django's test case lets only those through beside its ``databases``)."""
    config = copy.deepcopy(connections.settings["default"])
    config["NAME"] = ":memory:"
    wrapper = load_backend(config["ENGINE"]).DatabaseWrapper(config, OTHER_DB)
    connections[OTHER_DB] = wrapper
    try:
        with wrapper.schema_editor() as editor:
            editor.create_model(Group)
        yield OTHER_DB
    finally:
        wrapper.close()
        del connections[OTHER_DB]


@pytest.mark.django_db(transaction=True)
def test_each_database_invalidates_when_its_own_transaction_commits(
    tag_cache: Any, scripts: Callable[[], int], other_db: str
) -> None:
    (here,) = make_groups(tag_cache, 1, "here")
    there = Group(name="there")
    there.save(using=other_db)
    tag_cache.set(f"page:{there.pk}:there", 1, tags=["name:there"])
    before = scripts()
    with transaction.atomic():
        with transaction.atomic(using=other_db):
            there.name = "there"
            there.save(using=other_db)
            here.save()
        assert tag_cache.get(f"page:{there.pk}:there") is None  # its database committed
        assert tag_cache.get("by-name:here0") == 1  # this one has not yet
        assert scripts() - before == 1
    assert tag_cache.get("by-name:here0") is None
    assert scripts() - before == 2


@pytest.mark.django_db(transaction=True)
def test_an_outage_after_a_bulk_delete_is_logged_once_with_the_row_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = {
        "BACKEND": "cachekit_django.cache.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "retries": 0},
    }
    signals._reports.clear()
    try:
        with override_settings(CACHES={**settings.CACHES, "down": down}):
            invalidates_tags("groups", "group:{pk}", cache="down")(Group)
            Group.objects.bulk_create(Group(name=f"row{i}") for i in range(40))
            Group.objects.filter(name__startswith="row").delete()  # no exception
        assert not Group.objects.filter(name__startswith="row").exists()
        (record,) = [r for r in caplog.records if r.name == "cachekit_django.signals"]
        assert record.levelname == "ERROR"
        message = record.getMessage()
        assert "could not invalidate tags ['groups', 'group:" in message
        assert ", ... 41 in all] of auth.Group (40 rows, first pk=" in message
    finally:
        for key in [key for key in signals._RULES if key[0] == "auth.Group"]:
            signals._RULES.pop(key).disconnect()
        signals._reports.clear()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("bad", [None, ["a", "list"]])
def test_a_mistake_in_a_rule_still_raises_from_a_bulk_delete(tag_cache: Any, bad: Any) -> None:
    """A bad tag of one row (unhashable ones too) raises, typed, from the delete itself, which
    it rolls back as any receiver's error does: found in the batch after the commit instead, it
    cost every row of the transaction its invalidation (second-reading finding)."""
    make_groups(tag_cache, 5)
    invalidates_tags(lambda group: [bad] if group.name == "g3" else ["ok"], cache="tags")(Group)
    with pytest.raises(InvalidArgumentType, match="tags must be"):
        Group.objects.filter(name__startswith="g").delete()
    assert Group.objects.filter(name__startswith="g").count() == 5  # rolled back


# -- a misconfigured alias: tag operations raise its configuration error ------------------------

BAD = {
    "BACKEND": "cachekit_django.cache.RedisCache",
    "LOCATION": "redis://127.0.0.1:1/0",
    "OPTIONS": {"socket_timeout": "abc"},
}


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.set("k", 1, tags=["t"]),
        lambda c: c.add("k", 1, tags=["t"]),
        lambda c: c.set("k", 1, tags=["t"], xx=True),
        lambda c: c.set_many({"k": 1}, tags=["t"]),
        lambda c: c.get_or_set("k", 1, tags=["t"]),
        lambda c: c.invalidate_tags(["t"]),
        lambda c: c.delete_pattern("k*"),
        lambda c: asyncio.run(c.aset("k", 1, tags=["t"])),
        lambda c: asyncio.run(c.aset_many({"k": 1}, tags=["t"])),
        lambda c: asyncio.run(c.ainvalidate_tags(["t"])),
    ],
    ids=[
        "set",
        "add",
        "set-xx",
        "set_many",
        "get_or_set",
        "invalidate_tags",
        "delete_pattern",
        "aset",
        "aset_many",
        "ainvalidate_tags",
    ],
)
def test_a_misconfigured_alias_raises_its_configuration_error_for_tags(
    call: Callable[[Any], Any],
) -> None:
    with (
        override_settings(CACHES={"default": settings.CACHES["default"], "bad": BAD}),
        pytest.raises(InvalidCacheConfiguration, match="socket_timeout") as raised,
    ):
        call(caches["bad"])
    assert raised.value.key == "socket_timeout"


@pytest.mark.django_db
def test_captured_callbacks_of_a_test_case_see_every_row_and_invalidate_once(
    tag_cache: Any, scripts: Callable[[], int], django_capture_on_commit_callbacks: Any
) -> None:
    """In a TestCase nothing commits: rows changed before the capture leave their batch open,
    and the rows changed inside it must still be captured (a callback each) and invalidated."""
    Group.objects.create(name="before")  # queued, never run: the test's transaction is open
    groups = make_groups(tag_cache, 20)
    before = scripts()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        Group.objects.filter(name__startswith="g").delete()
    assert len(callbacks) == 20
    assert scripts() - before == 1
    assert entries(tag_cache, groups) == []
