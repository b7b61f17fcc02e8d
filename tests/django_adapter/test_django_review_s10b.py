"""Review fixes of the Django adapter: cachekit_clear refuses before removing anything, a
misconfigured alias is reported as such, unreadable file caches, cachekit_warm's bad lines, the
tag-invalidation checks and signals (proxies, a down tag cache)."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, models
from django.test import Client, override_settings
from django.test.utils import isolate_apps
from django.utils.html import escape

from cachekit.errors import InvalidArgumentType
from cachekit.testing.servers import MemcachedServer, RedisServer, free_port
from cachekit_django import signals
from cachekit_django.checks import check_caches, check_tag_caches
from cachekit_django.signals import invalidates_tags

PREFIX = "s10b"


def run(*args: str, **options: Any) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def hashed_key(key: str, key_prefix: str, version: int) -> str:
    """A KEY_FUNCTION that hides the key (as a hashing one does): no pattern maps onto it."""
    import hashlib

    return hashlib.sha1(f"{key_prefix}:{version}:{key}".encode()).hexdigest()


@pytest.fixture
def server_aliases(redis_server: RedisServer, memcached_server: MemcachedServer) -> Iterator[None]:
    """default (memory), a Redis alias, a memcached one and a hashing-KEY_FUNCTION Redis one."""
    configured = {
        "default": settings.CACHES["default"],
        "redis": {
            "BACKEND": "cachekit_django.cache.RedisCache",
            "LOCATION": redis_server.url,
            "KEY_PREFIX": PREFIX,
        },
        "mc": {
            "BACKEND": "cachekit_django.cache.MemcachedCache",
            "LOCATION": f"{memcached_server.host}:{memcached_server.port}",
            "KEY_PREFIX": PREFIX,
        },
        "hashed": {
            "BACKEND": "cachekit_django.cache.RedisCache",
            "LOCATION": redis_server.url,
            "KEY_PREFIX": f"{PREFIX}h",
            "KEY_FUNCTION": f"{__name__}.hashed_key",
        },
    }
    with override_settings(CACHES=configured):
        for alias in configured:
            caches[alias].clear()
        yield
        for alias in configured:
            caches[alias].clear()


# -- 1, 2: cachekit_clear refuses before anything is removed, dry run or not -------------------


@pytest.mark.usefixtures("server_aliases")
@pytest.mark.parametrize("dry_run", [False, True])
@pytest.mark.parametrize(
    ("args", "refused", "reason"),
    [
        (["--pattern", "k*"], "mc", "cannot delete by pattern"),
        (["--tag", "t"], "mc", "cannot invalidate tags"),
        (["--pattern", "k*"], "hashed", "does not keep the key verbatim"),
    ],
)
def test_clear_refuses_every_alias_that_cannot_before_removing_any(
    args: list[str], refused: str, reason: str, dry_run: bool
) -> None:
    names = ["default", "redis", refused]
    for alias in names:
        tags = ["t"] if "--tag" in args and alias != "mc" else None
        caches[alias].set("k1", 1, **({"tags": tags} if tags else {}))
    extra = ["--dry-run"] if dry_run else []
    for alias_args in ([], *(["--alias", refused],)):
        with pytest.raises(CommandError, match=rf"{refused}: UnsupportedOperation: .*{reason}"):
            run("cachekit_clear", *args, *alias_args, *extra, interactive=False)
    assert {alias: caches[alias].get("k1") for alias in names} == dict.fromkeys(names, 1)


# -- 3: a misconfigured cachekit alias is reported as misconfigured, not as a foreign backend ----

BAD = {
    "BACKEND": "cachekit_django.cache.RedisCache",
    "LOCATION": "redis://127.0.0.1:1/0",
    "OPTIONS": {"socket_timeout": "abc"},
}
BAD_TEXT = "option 'socket_timeout' accepts a number of seconds"


@pytest.fixture
def bad_alias() -> Iterator[None]:
    with override_settings(CACHES={"default": settings.CACHES["default"], "bad": BAD}):
        yield


@pytest.mark.usefixtures("bad_alias")
@pytest.mark.parametrize(
    "args",
    [
        ["cachekit_stats"],
        ["cachekit_stats", "--json"],
        ["cachekit_inspect", "x", "--alias", "bad"],
        ["cachekit_clear", "--noinput"],
        ["cachekit_clear", "--pattern", "x*", "--noinput"],
        ["cachekit_clear", "--dry-run"],
    ],
)
def test_commands_report_the_configuration_error(args: list[str]) -> None:
    with pytest.raises(CommandError, match=rf"bad.*misconfigured: .*{BAD_TEXT}"):
        run(*args, skip_checks=True)


@pytest.mark.usefixtures("bad_alias")
def test_admin_page_shows_a_misconfigured_alias(admin_client: Client) -> None:
    response = admin_client.get("/admin/cachekit/")
    assert response.status_code == 200
    row = next(row for row in response.context["rows"] if row.alias == "bad")
    assert row.stats is None
    assert row.error is not None
    assert row.error.startswith("misconfigured: ")
    html = response.content.decode()
    assert escape(BAD_TEXT) in html
    assert "not a cachekit backend" not in html


@pytest.mark.usefixtures("bad_alias")
def test_metrics_show_a_misconfigured_alias() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    response = Client().get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    (sample,) = families["cachekit_django_alias_misconfigured"].samples
    assert sample.labels["alias"] == "bad"
    assert BAD_TEXT in sample.labels["error"]


# -- 4: a file cache whose directory cannot be listed is not a healthy empty cache --------------


@pytest.fixture
def lost_directory(tmp_path: Path) -> Iterator[Path]:
    """A FileCache alias whose directory is replaced by a plain file after it was built."""
    directory = tmp_path / "files"
    directory.mkdir()
    alias = {"BACKEND": "cachekit_django.cache.FileCache", "LOCATION": str(directory)}
    with override_settings(CACHES={"default": settings.CACHES["default"], "files": alias}):
        caches["files"].set("k", 1)
        shutil.rmtree(directory)
        directory.write_text("not a directory")
        yield directory


def test_stats_of_a_file_cache_with_an_unreadable_directory_fail(lost_directory: Path) -> None:
    with pytest.raises(CommandError, match=r"files: server unreachable: directory .* not be read"):
        run("cachekit_stats", "--alias", "files")


def test_prometheus_reports_an_unreadable_directory_as_down(lost_directory: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def server_up(text: str) -> float | None:
        return next(
            (
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "cachekit_server_up" and sample.labels["provider"] == "file"
            ),
            None,
        )

    down = Client().get("/metrics").content.decode()
    assert server_up(down) == 0.0
    assert 'cachekit_items{cache="default",provider="file"}' not in down
    lost_directory.unlink()
    lost_directory.mkdir()
    assert server_up(Client().get("/metrics").content.decode()) == 1.0


# -- 6: cachekit_warm reports every bad line of --urls, before requesting anything --------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"/cached/\nhttp://[::1/abc\nftp://x/y\n", r"2 bad line\(s\).*line 2: .*line 3: 'ftp"),
        (b"\xff\xfe/bad\n", r"is not UTF-8 text"),
    ],
)
def test_warm_bad_urls_file_is_a_command_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_bytes(content)
    caches["default"].clear()
    with pytest.raises(CommandError, match=message):
        run("cachekit_warm", "--urls", str(urls))
    assert not caches["default"].keys("*")  # /cached/ was not requested


# -- 7, 8: tag invalidation: the tag cache is checked at start-up, a down one is logged, and
# proxies invalidate as their model does --------------------------------------------------------


class GroupProxy(Group):
    class Meta:
        proxy = True
        app_label = "auth"


@pytest.fixture
def group_rule_cleanup() -> Iterator[None]:
    yield
    for key in [key for key in signals._RULES if key[0] == "auth.Group"]:
        signals._RULES.pop(key).disconnect()


@pytest.mark.usefixtures("server_aliases", "group_rule_cleanup")
@pytest.mark.parametrize(
    ("alias", "problem"),
    [
        ("nosuch", "is not in settings.CACHES"),
        ("locmem", "is not a cachekit backend"),
        ("mc", "is a memcached:// cache, which has no tags"),
    ],
)
@pytest.mark.parametrize("declared", ["settings", "decorator"])
def test_check_rejects_a_tag_cache_without_tags(alias: str, problem: str, declared: str) -> None:
    locmem = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    rules = {"auth.Group": {"tags": ["groups"], "cache": alias}}
    with override_settings(
        CACHES={**settings.CACHES, "locmem": locmem},
        CACHEKIT_INVALIDATE_TAGS=rules if declared == "settings" else {},
    ):
        if declared == "decorator":
            invalidates_tags("groups", cache=alias)(Group)
        errors = [m for m in check_tag_caches() if m.id == "cachekit_django.E006"]
        assert len(errors) == 1
        assert f"the tag cache {alias!r} of auth.Group {problem}" in errors[0].msg
        assert errors[0].hint
        invalidates_tags("groups", cache="redis")(Group)  # a cache with tags: no error
        if (connected := signals._RULES.pop((Group._meta.label, alias), None)) is not None:
            connected.disconnect()
        with override_settings(CACHEKIT_INVALIDATE_TAGS={}):
            assert check_tag_caches() == []


@pytest.mark.django_db
@pytest.mark.usefixtures("group_rule_cleanup")
def test_proxy_saves_and_deletes_invalidate(django_capture_on_commit_callbacks: Any) -> None:
    cache = caches["default"]
    invalidates_tags("groups", "group:{pk}")(Group)
    with django_capture_on_commit_callbacks(execute=True):
        group = GroupProxy.objects.create(name="proxied")
    cache.set("list", 1, tags=["groups"])
    cache.set("page", 1, tags=[f"group:{group.pk}"])
    with django_capture_on_commit_callbacks(execute=True):
        group.name = "renamed"
        group.save()
    assert cache.get("list") is None
    assert cache.get("page") is None
    cache.set("list", 1, tags=["groups"])
    with django_capture_on_commit_callbacks(execute=True):
        group.delete()
    assert cache.get("list") is None
    cache.set("list", 1, tags=["groups"])
    with django_capture_on_commit_callbacks(execute=True):
        Permission.objects.filter(pk=-1).delete()
        User.objects.create(username="not-a-group")
    assert cache.get("list") == 1  # other models leave it alone


@pytest.mark.django_db
@pytest.mark.usefixtures("group_rule_cleanup")
def test_a_down_tag_cache_is_logged_not_raised_after_commit(
    django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture
) -> None:
    down = {
        "BACKEND": "cachekit_django.cache.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
    }
    with override_settings(CACHES={**settings.CACHES, "tags": down}):
        invalidates_tags("groups", cache="tags")(Group)
        with django_capture_on_commit_callbacks(execute=True):
            group = Group.objects.create(name="saved")
    assert Group.objects.filter(pk=group.pk).exists()
    (record,) = [r for r in caplog.records if r.name == "cachekit_django.signals"]
    assert record.levelname == "ERROR"
    assert "could not invalidate tags ['groups'] of auth.Group" in record.getMessage()


@pytest.mark.django_db
@pytest.mark.usefixtures("group_rule_cleanup")
def test_a_proxy_defined_after_the_rule_invalidates(
    django_capture_on_commit_callbacks: Any,
) -> None:
    cache = caches["default"]
    invalidates_tags("groups")(Group)

    class LateGroupProxy(Group):
        class Meta:
            proxy = True
            app_label = "auth"

    cache.set("list", 1, tags=["groups"])
    with django_capture_on_commit_callbacks(execute=True):
        LateGroupProxy.objects.create(name="late")
    assert cache.get("list") is None


# -- system checks: VERSION as Django takes it; a FileCache LOCATION that is a file ------------


@pytest.mark.parametrize(
    ("version", "refused"),
    [
        (-3, False),
        ("-3", False),
        ("3", False),
        (0, False),
        (" 3", True),
        ("03", True),
        (True, True),
        ("two", True),
    ],
)
def test_version_check_follows_the_made_key(version: Any, refused: bool) -> None:
    entry = {"BACKEND": "cachekit_django.cache.MemoryCache", "VERSION": version}
    with override_settings(CACHES={"default": settings.CACHES["default"], "v": entry}):
        ids = [message.id for message in check_caches()]
    assert ("cachekit_django.E003" in ids) is refused


def test_file_location_that_is_a_file_points_the_hint_at_location(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("")
    entry = {"BACKEND": "cachekit_django.cache.FileCache", "LOCATION": str(plain)}
    with override_settings(CACHES={"default": settings.CACHES["default"], "f": entry}):
        (error,) = [m for m in check_caches() if m.id == "cachekit_django.E001"]
    assert "is not a directory" in error.msg
    assert error.hint.startswith("Fix CACHES['f']['LOCATION']")
    assert "OPTIONS" not in error.hint


# -- second reading: one invalidation per delete, no leak, mistakes raise, no log flood ----------


@pytest.fixture
def special_group() -> Iterator[type[Group]]:
    """A multi-table child of Group, with its table, for one test: taken out of the registry
    afterwards, or every later Group delete would look for its missing table."""

    class SpecialGroup(Group):
        extra = models.CharField(max_length=10, default="")

        class Meta:
            app_label = "auth"

    with connection.schema_editor() as editor:
        editor.create_model(SpecialGroup)
    try:
        yield SpecialGroup
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(SpecialGroup)
        del apps.all_models["auth"]["specialgroup"]
        apps.clear_cache()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("group_rule_cleanup")
def test_a_multi_table_child_invalidates_once_per_change(special_group: type[Group]) -> None:
    """Deleting a child also deletes its parent row, whose post_delete the rule already heard:
    connected for the child's deletes as well, each delete invalidated twice."""
    cache = caches["default"]
    invalidates_tags("groups")(Group)
    calls: list[list[str]] = []
    original = cache.invalidate_tags

    def counting(tags: Any) -> int:
        calls.append(list(tags))
        return int(original(tags))

    cache.invalidate_tags = counting
    try:
        child = special_group.objects.create(name="child")
        assert calls == [["groups"]]  # the child's save (Django saves parents silently)
        calls.clear()
        child.delete()
        assert calls == [["groups"]]
        calls.clear()
        other = special_group.objects.create(name="other")
        calls.clear()
        special_group.objects.filter(pk=other.pk).delete()
        assert calls == [["groups"]]
    finally:
        del cache.invalidate_tags


@pytest.mark.usefixtures("group_rule_cleanup")
def test_models_of_a_throwaway_registry_do_not_join_a_rule() -> None:
    """class_prepared fires for isolate_apps' models too; joining kept each one alive."""
    invalidates_tags("groups")(Group)
    connected = signals._RULES[("auth.Group", "default")]
    before = list(connected.senders)
    with isolate_apps("django.contrib.auth"):

        class Throwaway(Group):
            class Meta:
                proxy = True
                app_label = "auth"

    assert connected.senders == before
    del Throwaway


@pytest.mark.django_db
@pytest.mark.usefixtures("group_rule_cleanup")
def test_a_mistake_in_a_rule_raises_after_commit(
    django_capture_on_commit_callbacks: Any,
) -> None:
    """Only an outage is logged: a rule computing a bad tag was logged and ignored too."""
    invalidates_tags(lambda group: [group.pk])(Group)
    with pytest.raises(InvalidArgumentType), django_capture_on_commit_callbacks(execute=True):
        Group.objects.create(name="bad tag")


@pytest.mark.django_db
@pytest.mark.usefixtures("group_rule_cleanup")
def test_an_outage_is_reported_once_per_interval_not_per_row(
    django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture
) -> None:
    down = {
        "BACKEND": "cachekit_django.cache.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "retries": 0},
    }
    signals._reports.clear()
    with override_settings(CACHES={**settings.CACHES, "tags": down}):
        invalidates_tags("groups", cache="tags")(Group)
        with django_capture_on_commit_callbacks(execute=True):
            for i in range(5):
                Group.objects.create(name=f"row{i}")
    assert Group.objects.filter(name__startswith="row").count() == 5
    records = [r for r in caplog.records if r.name == "cachekit_django.signals"]
    assert len(records) == 1
    signals._reports.clear()
