"""Tag invalidation on model ``post_save``/``post_delete``, declared per model (decorator,
function or settings), run when the transaction commits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.cache import caches
from django.db.models.signals import post_delete, post_save

from cachekit_django import signals
from cachekit_django.signals import (
    connect_from_settings,
    invalidate_tags_on_change,
    invalidates_tags,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def cache(settings: Any) -> Iterator[Any]:
    settings.CACHES = {
        "default": {"BACKEND": "cachekit_django.cache.MemoryCache", "LOCATION": "signals"},
        "pages": {
            "BACKEND": "cachekit_django.cache.MemoryCache",
            "LOCATION": "signals-pages",
            "KEY_PREFIX": "p",
        },
    }
    caches["default"].clear()
    yield caches["default"]
    for signal in (post_save, post_delete):
        for model in (Group, Permission):
            for cache_alias in ("default", "pages"):
                uid = f"cachekit_django:{model._meta.label}:{cache_alias}"
                signal.disconnect(sender=model, dispatch_uid=uid)
    for key in [key for key in signals._RULES if key[0] in ("auth.Group", "auth.Permission")]:
        signals._RULES.pop(key).disconnect()  # and the proxies and subclasses it connected


def test_save_and_delete_invalidate_after_commit(
    cache: Any, django_capture_on_commit_callbacks: Any
) -> None:
    invalidate_tags_on_change(Group, ["groups", "group:{pk}"])
    group = Group.objects.create(name="editors")
    cache.set("group-list", ["editors"], tags=["groups"])
    cache.set(f"group:{group.pk}:page", "<html>", tags=[f"group:{group.pk}"])
    cache.set("unrelated", 1, tags=["other"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        group.name = "writers"
        group.save()
    assert cache.get("group-list") == ["editors"]  # not before the commit
    for callback in callbacks:
        callback()
    assert cache.get("group-list") is None
    assert cache.get(f"group:{group.pk}:page") is None
    assert cache.get("unrelated") == 1
    cache.set("group-list", ["writers"], tags=["groups"])
    with django_capture_on_commit_callbacks(execute=True):
        group.delete()
    assert cache.get("group-list") is None


def test_decorator_and_callable_tags_in_another_cache(
    cache: Any, django_capture_on_commit_callbacks: Any
) -> None:
    pages = caches["pages"]
    pages.clear()
    decorate = invalidates_tags(lambda group: [f"name:{group.name}"], cache="pages")
    assert decorate(Group) is Group
    pages.set("by-name", "x", tags=["name:ops"])
    with django_capture_on_commit_callbacks(execute=True):
        Group.objects.create(name="ops")
    assert pages.get("by-name") is None


def test_settings_declared_rules(
    cache: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.CACHEKIT_INVALIDATE_TAGS = {
        "auth.Group": ["groups"],
        "auth.Permission": {"tags": ["perm:{instance.codename}"], "cache": "default"},
    }
    rules = connect_from_settings()
    assert len(rules) == 2
    cache.set("groups", 1, tags=["groups"])
    with django_capture_on_commit_callbacks(execute=True):
        Group.objects.create(name="g")
    assert cache.get("groups") is None
    permission = Permission.objects.first()
    assert permission is not None
    cache.set("perm", 1, tags=[f"perm:{permission.codename}"])
    with django_capture_on_commit_callbacks(execute=True):
        permission.save()
    assert cache.get("perm") is None


def test_bad_declarations_are_refused() -> None:
    with pytest.raises(ValueError, match="bare str"):
        invalidate_tags_on_change(Group, "groups")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        invalidate_tags_on_change(Group, [])
