"""Review findings in ``LOCATION``/``OPTIONS`` translation and the system checks: documented
forms that were refused or garbled, ``OPTIONS`` that beat the URL, and checks that crashed
instead of reporting. Real servers throughout (``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from django.core.cache.backends.base import BaseCache, InvalidCacheBackendError
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from cachekit.errors import ConfigurationError
from cachekit.testing.servers import RedisCluster, RedisServer, free_port
from cachekit_django import cache as backends
from cachekit_django.checks import check_caches
from cachekit_django.locations import plan
from cachekit_django.shared import build_unshared, close_shared

Factory = Callable[..., Callable[..., BaseCache]]
MEMORY = "cachekit_django.cache.MemoryCache"
REDIS = "cachekit_django.cache.RedisCache"
PREFIX = "django-tests:review-db:"


def _check(settings: Any, **entries: dict[str, Any]) -> list[Any]:
    settings.CACHES = {"default": {"BACKEND": MEMORY}, **entries}
    return check_caches()


# -- 1. a Sentinel LOCATION with several sentinels ------------------------------------------------


def test_sentinel_location_lists_its_sentinels(settings: Any) -> None:
    """Review finding: the documented ``redis+sentinel://s1:26379,s2:26379/mymaster/0`` was
    split on its comma as a list of servers, and refused (E001, plus a replicas W001)."""
    location = "redis+sentinel://s1:26379,s2:26379/mymaster/0"
    for kind in ("redis", "cachekit"):
        assert plan(kind, location, {}).url == location
        assert plan(kind, location, {}).notes == ()
    messages = _check(
        settings,
        named={"BACKEND": REDIS, "LOCATION": location},
        any={"BACKEND": "cachekit_django.cache.CacheKitCache", "LOCATION": location},
    )
    assert messages == []
    # A list of servers is still one: Django's primary and replicas.
    assert len(plan("redis", "redis://a:6379/0,redis://b:6379/0", {}).notes) == 1


@pytest.mark.servers
def test_sentinel_location_reaches_a_later_sentinel(
    backend_factory: Factory, redis_sentinel: Any
) -> None:
    dead = f"127.0.0.1:{free_port()}"  # the first sentinel is down: the second answers
    location = f"redis+sentinel://{dead},{redis_sentinel.host}:{redis_sentinel.port}/mymaster/0"
    for cls in (backends.RedisCache, backends.CacheKitCache):
        cache: Any = backend_factory(cls, location)(OPTIONS={"prefix": f"{PREFIX}sentinel:"})
        assert cache.configuration_error is None
        cache.set("k", cls.__name__)
        assert cache.get("k") == cls.__name__


# -- 2. cluster startup nodes with credentials ----------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "redis://:p%40ss@h1:7000/0,redis://:p%40ss@h2:7001/0",
        ["redis://:p%40ss@h1:7000/0", "redis://:p%40ss@h2:7001"],
    ],
)
def test_cluster_node_credentials_are_given_once(location: str | list[str]) -> None:
    """Review finding: each node's ``:pw@`` was kept, so the URL read as one password
    ``'pw@h1:7000,:pw'`` and the first node was lost."""
    result = plan("redis+cluster", location, {})
    assert result.url == "redis+cluster://:p%40ss@h1:7000,h2:7001"
    cache: Any = build_unshared(result)
    try:
        connection = cache._clients.settings
        assert connection.hosts == (("h1", 7000), ("h2", 7001))
        assert connection.password == "p@ss"
    finally:
        cache.close()


@pytest.mark.parametrize(
    "location",
    [
        "redis://:a@h1:7000/0,redis://:b@h2:7001/0",
        "redis://:a@h1:7000/0,redis://h2:7001/0",
        "redis://u:a@h1:7000/0,redis://:a@h2:7001/0",
    ],
)
def test_cluster_nodes_with_different_credentials_are_refused(settings: Any, location: str) -> None:
    with pytest.raises(ConfigurationError, match="different credentials") as info:
        plan("redis+cluster", location, {})
    assert info.value.key == "LOCATION"
    assert ":a@" not in str(info.value)  # no password in the message
    entry = {"BACKEND": "cachekit_django.cache.RedisClusterCache", "LOCATION": location}
    [message] = _check(settings, c=entry)
    assert message.id == "cachekit_django.E001"
    assert "['LOCATION']" in message.hint


@pytest.mark.parametrize(
    "location",
    [
        ["rediss://127.0.0.1:7000", "rediss://127.0.0.1:7001"],
        "rediss://127.0.0.1:7000/0,rediss://127.0.0.1:7001/0",
        ["redis://127.0.0.1:7000", "unix:///tmp/redis.sock"],
    ],
)
def test_cluster_nodes_other_than_redis_urls_are_refused(
    settings: Any, location: str | list[str]
) -> None:
    """rediss:// nodes became a plaintext cluster URL without a word."""
    with pytest.raises(ConfigurationError, match=r"got (a )?(rediss|unix)://") as info:
        plan("redis+cluster", location, {})
    assert info.value.key == "LOCATION"
    entry = {"BACKEND": "cachekit_django.cache.RedisClusterCache", "LOCATION": location}
    [message] = _check(settings, c=entry)
    assert message.id == "cachekit_django.E001"


@pytest.mark.servers
def test_cluster_with_a_password_from_node_urls(redis_binary: str) -> None:
    with RedisCluster(primaries=3, replicas=0, binary=redis_binary) as cluster:
        for node in cluster.nodes:
            redis.Redis(host=node.host, port=node.port).config_set("requirepass", "s3cr@t")
        location = [f"redis://:s3cr%40t@{node.host}:{node.port}/0" for node in cluster.nodes]
        params = {"OPTIONS": {"prefix": f"{PREFIX}cluster:"}}
        cache = backends.RedisClusterCache(location, params)
        try:
            assert cache.configuration_error is None
            cache.set("k", "v")
            assert cache.get("k") == "v"
        finally:  # the shared core goes before its cluster does
            close_shared(backends.RedisClusterCache.plan(location, params).url)


# -- 3. the URL's database wins over OPTIONS["db"] ------------------------------------------------


def _db_holding(client_for: Callable[[int], redis.Redis], key_pattern: str) -> list[int]:
    return [db for db in range(16) if client_for(db).keys(key_pattern)]


@pytest.mark.servers
def test_urls_database_wins_over_options(
    backend_factory: Factory, redis_server: RedisServer
) -> None:
    """Review finding: ``OPTIONS["db"]`` beat ``?db=`` (the key went to database 5, where
    Django's RedisCache stores it in 2). Each case lands where Django's RedisCache lands."""

    def client(db: int) -> redis.Redis:
        return redis.Redis(host=redis_server.host, port=redis_server.port, db=db)

    for suffix, db_option, expected in (
        ("?db=2", 5, 2),  # Django's RedisCache: redis-py's from_url, where the URL wins
        ("/3?db=4", None, 4),  # redis-py: the query's db over the path's
        ("/3?db=4", 6, 4),
        ("/3", 6, 3),
        ("", "7", 7),  # Django's documented OPTIONS={"db": "10"} fills what the URL lacks
    ):
        location = f"redis://{redis_server.host}:{redis_server.port}{suffix}"
        options = {} if db_option is None else {"db": db_option}
        ours = f"{PREFIX}{suffix}:{db_option}:"
        cache = backend_factory(backends.RedisCache, location)(OPTIONS={**options, "prefix": ours})
        django = DjangoRedisCache(location, {"KEY_PREFIX": "review-db", "OPTIONS": options})
        try:
            cache.set("k", "v")
            django.set("k", "v")
            found = (_db_holding(client, f"{ours}*"), _db_holding(client, "review-db:*"))
            assert found == ([expected], [expected]), (suffix, db_option)
        finally:
            cache.clear()
            django.delete("k")


@pytest.mark.servers
def test_unix_urls_database_wins_over_options(
    backend_factory: Factory, redis_unix_server: str
) -> None:
    """Review finding: ``unix:///r.sock?db=3`` with ``OPTIONS={"db": 4}`` used database 4."""
    sock = redis_unix_server.partition("://")[2].partition("?")[0]

    def client(db: int) -> redis.Redis:
        return redis.Redis(unix_socket_path=sock, db=db)

    for location, db_option, expected in (
        (f"unix://{sock}?db=3", 4, 3),
        (f"unix://{sock}", 5, 5),
    ):
        pattern = f"{PREFIX}unix{expected}:"
        options = {"prefix": pattern, "db": db_option}
        cache = backend_factory(backends.RedisCache, location)(OPTIONS=options)
        cache.set("k", "v")
        assert _db_holding(client, f"{pattern}*") == [expected]
        cache.clear()


# -- 4. checks report bad entries instead of crashing ---------------------------------------------


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ({"LOCATION": "redis://:pa[ss@127.0.0.1:6390/0"}, "LOCATION"),
        ({"LOCATION": "redis://[::1/0"}, "LOCATION"),
        ({"LOCATION": "redis://h:6379/0", "OPTIONS": {1: 2}}, "OPTIONS"),
    ],
)
def test_unparsable_entries_are_e001(settings: Any, entry: dict[str, Any], key: str) -> None:
    """Review finding: ``urlsplit``'s ValueError and ``**OPTIONS``' TypeError escaped the
    checks (``manage.py check`` showed a traceback) and the backend's constructor."""
    [message] = _check(settings, bad={"BACKEND": REDIS, **entry})
    assert message.id == "cachekit_django.E001"
    assert f"['{key}']" in message.hint
    assert "pa[ss" not in message.msg  # the URL (a password) is not echoed
    with pytest.raises(SystemCheckError, match=r"cachekit_django\.E001"):
        call_command("check", verbosity=0)
    backend = backends.RedisCache(entry["LOCATION"], entry)
    assert backend.configuration_error is not None
    assert backend.configuration_error.key == key
    with pytest.raises(InvalidCacheBackendError):
        backend.get("k")


def test_key_function_not_a_path_is_e004(settings: Any) -> None:
    """Review finding: a KEY_FUNCTION neither callable nor a str crashed ``import_string``;
    a callable stays accepted, as Django's ``get_key_func`` takes one."""
    messages = _check(
        settings,
        number={"BACKEND": MEMORY, "KEY_FUNCTION": 5},
        listed={"BACKEND": MEMORY, "KEY_FUNCTION": ["a.b"]},
        callable={"BACKEND": MEMORY, "KEY_FUNCTION": lambda key, prefix, version: key},
        path={
            "BACKEND": MEMORY,
            "KEY_FUNCTION": "django.core.cache.backends.base.default_key_func",
        },
    )
    assert sorted((m.id, m.obj) for m in messages) == [
        ("cachekit_django.E004", "CACHES['listed']"),
        ("cachekit_django.E004", "CACHES['number']"),
    ]
    assert "callable or a dotted path" in messages[0].msg


# -- 5. OPTIONS["db"] is a database number, not anything int() reads ------------------------------


@pytest.mark.parametrize("db", [2.7, True, -1])
def test_non_integer_db_is_refused(settings: Any, db: Any) -> None:
    """Review finding: ``int()`` truncated 2.7 to database 2 and True to 1, silently."""
    with pytest.raises(ConfigurationError, match="database number") as info:
        plan("redis", "redis://h:6379", {"OPTIONS": {"db": db}})
    assert info.value.key == "db"
    [message] = _check(settings, r={"BACKEND": REDIS, "LOCATION": "redis://h:6379",
                                    "OPTIONS": {"db": db}})  # fmt: skip
    assert message.id == "cachekit_django.E001"
    assert "['db']" in message.hint


def test_db_forms_taken_and_refused() -> None:
    assert plan("redis", "redis://h:6379", {"OPTIONS": {"db": 3}}).url == "redis://h:6379/3"
    assert plan("redis", "redis://h:6379", {"OPTIONS": {"db": "10"}}).url == "redis://h:6379/10"
    for db in ("2.7", "two", [2]):
        with pytest.raises(ConfigurationError, match="database number") as info:
            plan("redis", "redis://h:6379", {"OPTIONS": {"db": db}})
        assert info.value.key == "db"
    with pytest.raises(ConfigurationError) as info:
        plan("redis", "redis://h:6379?db=x", {})
    assert info.value.key == "LOCATION"  # the URL's own, not OPTIONS'


# -- 6. TIMEOUT NaN -------------------------------------------------------------------------------


def test_timeout_must_be_a_finite_number(settings: Any) -> None:
    """Review finding: ``TIMEOUT=float("nan")`` passed E002; Django's ``int()`` fails on it and
    the backend silently used 300 (infinity makes Django's constructor raise)."""
    messages = _check(
        settings,
        nan={"BACKEND": MEMORY, "TIMEOUT": float("nan")},
        inf={"BACKEND": MEMORY, "TIMEOUT": float("inf")},
        # what Django's int() reads stays accepted
        half={"BACKEND": MEMORY, "TIMEOUT": 60.5},
        text={"BACKEND": MEMORY, "TIMEOUT": "60"},
        never={"BACKEND": MEMORY, "TIMEOUT": None},
    )
    assert sorted((m.id, m.obj) for m in messages) == [
        ("cachekit_django.E002", "CACHES['inf']"),
        ("cachekit_django.E002", "CACHES['nan']"),
    ]
