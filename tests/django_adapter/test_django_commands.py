"""The cachekit_stats, cachekit_clear, cachekit_inspect and cachekit_warm management commands.

Run against the test settings' caches (a cachekit memory alias and Django's ``LocMemCache``) and,
where a provider matters, real redis-server and memcached processes from tests/conftest.py.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings

from cachekit.errors import BackendUnavailable
from cachekit.testing.servers import MemcachedServer, RedisServer, free_port

REPO = Path(__file__).resolve().parents[2]


class TTYBuffer(io.StringIO):
    """A stdout that says it is a terminal, as an interactive shell's is."""

    def isatty(self) -> bool:
        return True


def run(*args: str, stdout: io.StringIO | None = None, **options: Any) -> str:
    out = stdout if stdout is not None else io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


@pytest.fixture(autouse=True)
def _empty_caches() -> Iterator[None]:
    for alias in settings.CACHES:
        caches[alias].clear()
    yield
    for alias in settings.CACHES:
        caches[alias].clear()


@pytest.fixture(scope="module")
def server_caches(redis_server: RedisServer, memcached_server: MemcachedServer) -> dict[str, Any]:
    """The test settings' caches plus a cachekit Redis and a cachekit memcached alias."""
    configured = {
        **settings.CACHES,
        "redis": {
            "BACKEND": "cachekit_django.cache.RedisCache",
            "LOCATION": redis_server.url,
            "KEY_PREFIX": "cmdtests",
        },
        "memcached": {
            "BACKEND": "cachekit_django.cache.MemcachedCache",
            "LOCATION": f"{memcached_server.host}:{memcached_server.port}",
            "KEY_PREFIX": "cmdtests",
        },
    }
    return configured


@pytest.fixture
def with_servers(server_caches: dict[str, Any]) -> Iterator[None]:
    with override_settings(CACHES=server_caches):
        for alias in ("redis", "memcached"):
            caches[alias].clear()
        yield


# -- cachekit_stats -----------------------------------------------------------------------------


def test_stats_table_lists_every_alias() -> None:
    cache = caches["default"]
    cache.set("a", 1)
    cache.get("a")
    cache.get("a")
    cache.get("nope")
    stats = cache.get_stats()  # counters are per process and cumulative: compare with them
    out = run("cachekit_stats")
    header, default_row, locmem_row, note = out.splitlines()
    assert header.split()[:4] == ["alias", "provider", "hits", "misses"]
    assert default_row.split()[:6] == [
        "default", "memory", str(stats.hits), str(stats.misses), f"{stats.hit_ratio:.1%}", "1",
    ]  # fmt: skip
    assert stats.hits >= 2
    assert locmem_row.split()[0] == "locmem"
    assert "locmem: not a cachekit backend (django.core.cache.backends.locmem.LocMemCache)" in note


def test_stats_json_is_parsed_per_alias() -> None:
    cache = caches["default"]
    before = cache.get_stats()
    cache.set("a", 1)
    cache.get("a")
    cache.get("b")
    data = json.loads(run("cachekit_stats", "--json"))
    assert set(data) == {"default", "locmem"}
    stats = data["default"]["stats"]
    assert data["default"]["cachekit"] is True
    assert data["default"]["backend"] == "cachekit_django.cache.MemoryCache"
    assert stats["hits"] == before.hits + 1
    assert stats["misses"] == before.misses + 1
    assert stats["items"] == 1
    assert stats["provider"] == "memory"
    assert data["locmem"] == {
        "backend": "django.core.cache.backends.locmem.LocMemCache",
        "cachekit": False,
    }


def test_stats_one_alias_and_verbosity() -> None:
    out = run("cachekit_stats", "--alias", "default", verbosity=2)
    assert "avg get" in out.splitlines()[0]
    assert "locmem" not in out
    quiet = run("cachekit_stats", "--alias", "default", verbosity=0)
    assert quiet.splitlines()[0].startswith("default ")  # no header
    assert len(quiet.splitlines()) == 1


def test_stats_unknown_alias_is_a_command_error() -> None:
    with pytest.raises(CommandError, match=r"'nope' is not in settings\.CACHES"):
        run("cachekit_stats", "--alias", "nope")


@pytest.mark.usefixtures("with_servers")
def test_stats_show_breaker_state_of_network_providers() -> None:
    caches["redis"].set("k", "v")
    caches["redis"].get("k")
    data = json.loads(run("cachekit_stats", "--json"))
    assert data["redis"]["breaker"] == "closed"
    assert data["redis"]["stats"]["provider"] == "redis"
    assert data["redis"]["stats"]["hits"] >= 1
    assert data["memcached"]["breaker"] == "closed"
    table = run("cachekit_stats", "--alias", "redis")
    assert table.splitlines()[1].split()[-1] == "closed"


def test_stats_show_an_open_breaker() -> None:
    dead = {
        "BACKEND": "cachekit_django.cache.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        "OPTIONS": {"breaker_failures": 1, "breaker_recovery": 60},
    }
    with override_settings(CACHES={**settings.CACHES, "dead": dead}):
        with pytest.raises(BackendUnavailable):
            caches["dead"].get("k")
        out = io.StringIO()
        with pytest.raises(CommandError, match="dead: server unreachable"):
            run("cachekit_stats", "--json", "--alias", "dead", stdout=out)
        data = json.loads(out.getvalue())
        assert data["dead"]["breaker"] == "open"
        out = io.StringIO()
        with pytest.raises(CommandError):
            run("cachekit_stats", "--alias", "dead", stdout=out)
        assert out.getvalue().splitlines()[1].split()[-1] == "open"


def test_stats_of_an_unreachable_server_are_an_error_not_an_empty_cache() -> None:
    down = {
        "BACKEND": "cachekit_django.cache.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        "OPTIONS": {"socket_timeout": 0.5},
    }
    with override_settings(CACHES={**settings.CACHES, "down": down}):
        out = io.StringIO()
        with pytest.raises(CommandError, match=r"1 alias\(es\): down: server unreachable: "):
            run("cachekit_stats", stdout=out)
        lines = out.getvalue().splitlines()
        row = next(line.split() for line in lines if line.startswith("down "))
        # Hits and misses are the client's own; items, memory and evictions were never read.
        assert row[:2] == ["down", "redis"]
        assert row[5:8] == ["-", "-", "-"]
        assert any(line.startswith("down: server unreachable: ") for line in lines)
        default = next(line.split() for line in lines if line.startswith("default "))
        assert default[1] == "memory"  # the other aliases are still reported

        out = io.StringIO()
        with pytest.raises(CommandError):
            run("cachekit_stats", "--json", "--alias", "down", stdout=out)
        data = json.loads(out.getvalue())
        assert data["down"]["error"].startswith("server unreachable: ")
        assert data["down"]["stats"]["extra"]["server_error"]


# -- cachekit_clear -----------------------------------------------------------------------------


def test_clear_everything_of_one_alias() -> None:
    caches["default"].set_many({"a": 1, "b": 2})
    caches["locmem"].set("a", 1)
    out = run("cachekit_clear", "--alias", "default", interactive=False)
    assert "Cleared 'default'." in out
    assert caches["default"].get("a") is None
    assert caches["locmem"].get("a") == 1


def test_clear_without_alias_clears_every_alias_including_plain_django_ones() -> None:
    caches["default"].set("a", 1)
    caches["locmem"].set("a", 1)
    out = run("cachekit_clear", interactive=False)
    assert "Cleared 'default'." in out
    assert "Cleared 'locmem'." in out
    assert caches["locmem"].get("a") is None


def test_clear_pattern_removes_only_matching_keys() -> None:
    cache = caches["default"]
    cache.set_many({"user:1": 1, "user:2": 2, "order:1": 3})
    out = run("cachekit_clear", "--alias", "default", "--pattern", "user:*", interactive=False)
    assert "Removed 2 key(s) from 'default'." in out
    assert cache.get_many(["user:1", "user:2", "order:1"]) == {"order:1": 3}


def test_clear_pattern_honours_key_version() -> None:
    cache = caches["default"]
    cache.set("user:1", "v1")
    cache.set("user:1", "v2", version=2)
    run(
        "cachekit_clear", "--alias", "default", "--pattern", "user:*", "--key-version", "2",
        interactive=False,
    )  # fmt: skip
    assert cache.get("user:1") == "v1"
    assert cache.get("user:1", version=2) is None


def test_clear_tags() -> None:
    cache = caches["default"]
    cache.set("p:1", 1, tags=["catalog"])
    cache.set("p:2", 2, tags=["catalog", "promo"])
    cache.set("q", 3)
    out = run("cachekit_clear", "--alias", "default", "--tag", "catalog", interactive=False)
    assert "Removed 2 key(s)" in out
    assert cache.get_many(["p:1", "p:2", "q"]) == {"q": 3}


def test_dry_run_removes_nothing_and_counts() -> None:
    cache = caches["default"]
    cache.set_many({"user:1": 1, "user:2": 2, "order:1": 3})
    cache.set("t", 1, tags=["x"])
    caches["locmem"].set("a", 1)
    out = run("cachekit_clear", "--dry-run", verbosity=2)
    assert "Would remove 4 key(s) from 'default' (every key)." in out
    assert "Would remove every key from 'locmem' (not counted:" in out
    assert "  :1:user:1" in out  # -v2 lists the stored keys
    out = run("cachekit_clear", "--alias", "default", "--pattern", "user:*", "--dry-run")
    assert "Would remove 2 key(s) from 'default' (the keys matching 'user:*')." in out
    cache.set("u", 2, tags=["x", "y"])
    out = run("cachekit_clear", "--alias", "default", "--tag", "x", "--dry-run", verbosity=2)
    assert "Would remove 2 key(s) from 'default' (the keys tagged 'x')." in out
    assert "  :1:t\n  :1:u\n" in out
    assert run("cachekit_clear", "--dry-run", verbosity=0) == ""
    assert len(cache.get_many(["user:1", "user:2", "order:1", "t", "u"])) == 5
    assert caches["locmem"].get("a") == 1


def test_dry_run_lists_at_most_fifty_keys() -> None:
    caches["default"].set_many({f"k{n:03d}": n for n in range(60)})
    out = run("cachekit_clear", "--alias", "default", "--dry-run", verbosity=2)
    assert "  ... and 10 more" in out
    assert caches["default"].get("k059") == 59


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pattern", "a*"], "need cachekit backends; not one: locmem"),
        (["--alias", "locmem", "--tag", "t"], "not one: locmem"),
        (["--pattern", ""], "--pattern must not be empty"),
        (["--tag", ""], "--tag must not be empty"),
        (["--key-version", "2"], "--key-version only applies to --pattern"),
        (["--pattern", "a*", "--tag", "t"], "not allowed with argument"),
        (["--alias", "nope"], "'nope' is not in settings.CACHES"),
    ],
)
def test_clear_user_mistakes_are_command_errors(args: list[str], message: str) -> None:
    caches["default"].set("a1", 1)
    with pytest.raises(CommandError, match=message):
        run("cachekit_clear", *args, interactive=False)
    assert caches["default"].get("a1") == 1


@pytest.mark.usefixtures("with_servers")
def test_clear_on_redis_and_memcached() -> None:
    caches["redis"].set_many({"user:1": 1, "user:2": 2, "x": 3})
    out = run("cachekit_clear", "--alias", "redis", "--pattern", "user:*", "--dry-run")
    assert "Would remove 2 key(s) from 'redis'" in out
    caches["redis"].set("tagged", 1, tags=["promo"])
    out = run("cachekit_clear", "--alias", "redis", "--tag", "promo", "--dry-run")
    assert "Would remove 1 key(s) from 'redis'" in out
    assert caches["redis"].get("tagged") == 1
    run("cachekit_clear", "--alias", "redis", "--pattern", "user:*", interactive=False)
    assert caches["redis"].get_many(["user:1", "user:2", "x"]) == {"x": 3}

    caches["memcached"].set("m", 1)
    out = run("cachekit_clear", "--alias", "memcached", "--dry-run")
    assert "not counted: the memcached provider cannot list its keys" in out
    assert caches["memcached"].get("m") == 1
    run("cachekit_clear", "--alias", "memcached", interactive=False)
    assert caches["memcached"].get("m") is None


def _manage(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cachekit_test_settings",
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "django_adapter"), str(REPO)]),
    }
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "django", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_clear_asks_for_confirmation_unless_noinput() -> None:
    declined = _manage("cachekit_clear", "--alias", "default", stdin="no\n")
    assert declined.returncode == 0, declined.stderr
    assert "Type 'yes' to continue" in declined.stdout
    assert "Cancelled." in declined.stdout
    assert "Cleared" not in declined.stdout
    confirmed = _manage("cachekit_clear", "--alias", "default", stdin="yes\n")
    assert "Cleared 'default'." in confirmed.stdout, confirmed.stderr


def test_clear_prompt_at_end_of_input_is_cancelled_not_a_traceback() -> None:
    """Without a terminal (stdin at EOF, as under cron or CI) the prompt raised EOFError."""
    result = _manage("cachekit_clear", "--alias", "default", stdin="")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "EOFError" not in result.stderr
    assert "CommandError: " in result.stderr
    assert "--noinput" in result.stderr
    assert "Cleared" not in result.stdout


# -- cachekit_inspect ---------------------------------------------------------------------------


def test_inspect_memory_entry() -> None:
    caches["default"].set("user:1", {"name": "Ada", "roles": ["admin"]}, timeout=300)
    out = run("cachekit_inspect", "user:1")
    fields = dict(
        line.split(None, 1) for line in out.replace("stored key", "stored_key").splitlines()
    )
    assert fields["stored_key"] == ":1:user:1"
    assert fields["type"] == "dict"
    assert 290 < float(fields["ttl"].removesuffix(" s")) <= 300
    assert fields["value"] == "{'name': 'Ada', 'roles': ['admin']}"
    assert fields["alias"] == "default (memory)"


def test_inspect_json_and_never_expiring_key() -> None:
    caches["default"].set("forever", "x" * 1000, timeout=None)
    data = json.loads(run("cachekit_inspect", "forever", "--json", "--preview-length", "20"))
    assert data["ttl"] is None
    assert data["value_type"] == "str"
    assert data["stored_key"] == ":1:forever"
    assert data["preview"] == "'xxxxxxx...xxxxxxxx'"  # reprlib keeps both ends
    assert len(data["preview"]) == 20
    assert "never expires" in run("cachekit_inspect", "forever")


def test_inspect_no_value_reads_no_value() -> None:
    cache = caches["default"]
    cache.set("k", 1)
    hits = cache.get_stats().hits
    out = run("cachekit_inspect", "k", "--no-value")
    assert "value" not in out
    assert cache.get_stats().hits == hits
    run("cachekit_inspect", "k")
    assert cache.get_stats().hits == hits + 1  # the preview is a real read


def test_inspect_key_version() -> None:
    caches["default"].set("k", "two", version=2)
    with pytest.raises(CommandError, match="no entry for 'k'"):
        run("cachekit_inspect", "k")
    assert "'two'" in run("cachekit_inspect", "k", "--key-version", "2")


@pytest.mark.usefixtures("with_servers")
def test_inspect_redis_entry_shows_serializer_and_size() -> None:
    caches["redis"].set("doc", {"body": "y" * 5000}, timeout=60)
    data = json.loads(run("cachekit_inspect", "doc", "--alias", "redis", "--json"))
    assert data["provider"] == "redis"
    assert data["serializer"] is not None
    assert data["size"] is not None
    assert data["size"] > 0
    assert data["value_type"] == "dict"
    assert 50 < data["ttl"] <= 60


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing"], "no entry for 'missing' in 'default' \\(stored key ':1:missing'\\)"),
        (["k", "--alias", "locmem"], "'locmem' is not a cachekit backend"),
        (["k", "--alias", "nope"], "'nope' is not in settings.CACHES"),
        (["k", "--preview-length", "0"], "--preview-length must be at least 1"),
    ],
)
def test_inspect_user_mistakes_are_command_errors(args: list[str], message: str) -> None:
    caches["default"].set("k", 1)
    with pytest.raises(CommandError, match=message):
        run("cachekit_inspect", *args)


# -- cachekit_warm ------------------------------------------------------------------------------


def test_warm_urls_fill_cache_page(tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("# warm these\n\nhttp://testserver/cached/\n", encoding="utf-8")
    out = run("cachekit_warm", "--urls", str(urls))
    assert "Warmed 1 item(s)" in out
    assert "write(s)" in out
    first = Client().get("/cached/").content
    assert Client().get("/cached/").content == first  # served from what warming stored
    caches["default"].clear()
    assert Client().get("/cached/").content != first  # and it really was the cache


def test_warm_bare_paths_use_host(tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("/cached/\n", encoding="utf-8")
    run("cachekit_warm", "--urls", str(urls), "--host", "shop.example")
    page = Client().get("/cached/", headers={"host": "shop.example"}).content
    assert Client().get("/cached/", headers={"host": "shop.example"}).content == page
    assert Client().get("/cached/").content != page  # another host, another cache entry


def test_warm_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("http://testserver/cached/\nhttp://testserver/cached/?page=2\n")
    tty = TTYBuffer()
    run("cachekit_warm", "--urls", str(urls), stdout=tty)
    assert "\r[" in tty.getvalue()
    assert "2/2" in tty.getvalue()
    assert "\r" not in run("cachekit_warm", "--urls", str(urls))
    tty = TTYBuffer()
    run("cachekit_warm", "--urls", str(urls), "--no-progress", stdout=tty)
    assert "\r" not in tty.getvalue()


def test_warm_reports_failed_urls(tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("http://testserver/cached/\nhttp://testserver/gone/\n/nowhere/\n")
    with pytest.raises(CommandError, match=r"2 of 3 URL\(s\) failed: .*gone/ \(410\).*\(404\)"):
        run("cachekit_warm", "--urls", str(urls))


def warm_three(cache: Any) -> Iterator[str]:
    for n in range(3):
        cache.set(f"warm:{n}", n)
        yield f"warm:{n}"


def warm_count(cache: Any) -> int:
    cache.set_many({"a": 1, "b": 2})
    return 2


NOT_CALLABLE = 42


def test_warm_callable() -> None:
    tty = TTYBuffer()
    out = run("cachekit_warm", "--callable", f"{__name__}.warm_three", stdout=tty)
    assert "Warmed 3 item(s)" in out
    assert "3 write(s)" in out
    assert "\r3 warm:2" in out  # no total known: a counter instead of a bar
    assert caches["default"].get_many(["warm:0", "warm:2"]) == {"warm:0": 0, "warm:2": 2}
    out = run("cachekit_warm", "--callable", f"{__name__}.warm_count", "--alias", "locmem")
    assert "Warmed 2 item(s)" in out
    assert caches["locmem"].get("b") == 2


@pytest.mark.parametrize("function", ["warm_three", "warm_count"])
def test_warm_callable_on_an_unreachable_server_is_a_command_error(function: str) -> None:
    """The cache error raised from the warm-up (in its call or while it yields) was a raw
    traceback; --urls already failed with a CommandError."""
    down = {
        "BACKEND": "cachekit_django.cache.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        "OPTIONS": {"socket_timeout": 0.5},
    }
    failed = rf"--callable '.*\.{function}' failed: "
    with (
        override_settings(CACHES={**settings.CACHES, "down": down}),
        pytest.raises(CommandError, match=failed) as info,
    ):
        run("cachekit_warm", "--callable", f"{__name__}.{function}", "--alias", "down")
    assert isinstance(info.value.__cause__, BackendUnavailable)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--callable", "no.such.module.fn"], "cannot import --callable 'no.such.module.fn'"),
        (["--callable", f"{__name__}.NOT_CALLABLE"], "is not callable"),
        (["--urls", "/no/such/file"], "cannot read --urls file '/no/such/file'"),
        ([], "one of the arguments --urls --callable is required"),
    ],
)
def test_warm_user_mistakes_are_command_errors(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("cachekit_warm", *args)


def test_warm_rejects_empty_files_and_other_schemes(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(CommandError, match="lists no URL"):
        run("cachekit_warm", "--urls", str(empty))
    ftp = tmp_path / "ftp.txt"
    ftp.write_text("ftp://testserver/cached/\n")
    with pytest.raises(CommandError, match="not an http"):
        run("cachekit_warm", "--urls", str(ftp))


# -- aliases sharing one core (only KEY_PREFIX differs) -----------------------------------------


@pytest.fixture
def prefix_twins(redis_server: RedisServer) -> Iterator[None]:
    location = redis_server.url.rsplit("/", 1)[0] + "/13"
    twins = {
        "default": settings.CACHES["default"],
        "main": {"BACKEND": "cachekit_django.cache.RedisCache", "LOCATION": location,
                 "KEY_PREFIX": "a"},
        "sessions": {"BACKEND": "cachekit_django.cache.RedisCache", "LOCATION": location,
                     "KEY_PREFIX": "s"},
    }  # fmt: skip
    with override_settings(CACHES=twins):
        assert caches["main"].cachekit is caches["sessions"].cachekit
        caches["main"].cachekit.clear()
        yield
        caches["main"].cachekit.clear()


@pytest.mark.usefixtures("prefix_twins")
def test_clearing_an_alias_sharing_its_core_removes_only_its_own_keys() -> None:
    main, sessions = caches["main"], caches["sessions"]
    main.set_many({f"user:{i}": i for i in range(5)})
    sessions.set("user:99", 1)
    dry = run("cachekit_clear", "--alias", "sessions", "--dry-run", verbosity=2)
    assert (
        "Would remove 1 key(s) from 'sessions' (only its own keys: its cache is shared with "
        "'main')." in dry
    )
    assert "a:1:user:" not in dry
    out = run("cachekit_clear", "--alias", "sessions", interactive=False)
    assert (
        "Removed 1 key(s) from 'sessions' (only its own keys: its cache is shared with 'main')"
        in out
    )
    assert sessions.get("user:99") is None
    assert main.get_many([f"user:{i}" for i in range(5)]) == {f"user:{i}": i for i in range(5)}
    # Cleared together, the core is cleared whole.
    sessions.set("user:99", 1)
    run("cachekit_clear", interactive=False)
    assert main.get("user:1") is None
    assert sessions.get("user:99") is None


def test_clearing_a_memcached_alias_sharing_its_core_is_refused(
    memcached_server: MemcachedServer,
) -> None:
    location = f"{memcached_server.host}:{memcached_server.port}"
    twins = {
        "main": {"BACKEND": "cachekit_django.cache.MemcachedCache", "LOCATION": location,
                 "KEY_PREFIX": "twin-a"},
        "sessions": {"BACKEND": "cachekit_django.cache.MemcachedCache", "LOCATION": location,
                     "KEY_PREFIX": "twin-s"},
    }  # fmt: skip
    with override_settings(CACHES=twins):
        caches["main"].set("k", 1)
        with pytest.raises(CommandError, match="'sessions' shares its cache with 'main'"):
            run("cachekit_clear", "--alias", "sessions", interactive=False)
        assert caches["main"].get("k") == 1


@pytest.mark.usefixtures("prefix_twins")
def test_stats_say_the_counters_of_a_shared_core_are_shared() -> None:
    out = run("cachekit_stats")
    assert "sessions: statistics shared with 'main'" in out
    assert "main: statistics shared with 'sessions'" in out
    assert "default: statistics shared" not in out
    data = json.loads(run("cachekit_stats", "--json"))
    assert data["sessions"]["shared_with"] == ["main"]
    assert "shared_with" not in data["default"]
