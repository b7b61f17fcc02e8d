"""django-redis's ``OPTIONS`` work unchanged: a switch is one ``BACKEND`` line."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from cachekit.errors import ConfigurationError
from cachekit_django.cache import RedisCache
from cachekit_django.checks import check_caches
from cachekit_django.locations import plan

#: django-redis's documented production entry (its README), OPTIONS as written there.
DJANGO_REDIS_OPTIONS = {
    "CLIENT_CLASS": "django_redis.client.DefaultClient",
    "SOCKET_CONNECT_TIMEOUT": 5,
    "SOCKET_TIMEOUT": 5,
    "CONNECTION_POOL_KWARGS": {"max_connections": 100, "retry_on_timeout": True},
    "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
    "COMPRESSOR": "django_redis.compressors.zlib.ZlibCompressor",
    "IGNORE_EXCEPTIONS": True,
}


def _built(kind: str, location: str, options: dict[str, Any]) -> None:
    """Plan and build (not connect) as the system checks do."""
    from cachekit_django.shared import build_unshared

    build_unshared(plan(kind, location, {"OPTIONS": options})).close()


def test_options_become_the_providers() -> None:
    result = plan("redis", "redis://h:6379/1", {"OPTIONS": {**DJANGO_REDIS_OPTIONS}})
    assert result.options == {
        "socket_connect_timeout": 5,
        "socket_timeout": 5,
        "max_connections": 100,
        "serializer": "json",
        "compression": "zlib",
        "fail_open": True,
    }
    pool_note, json_note = result.notes  # in key order: CONNECTION_POOL_KWARGS, SERIALIZER
    assert "DjangoJSONEncoder" in json_note
    assert "retry_on_timeout" in pool_note


def test_password_and_db_go_into_the_url_as_djangos_do() -> None:
    options = {"PASSWORD": "p@ss", "CONNECTION_POOL_KWARGS": {"db": 3}}
    assert plan("redis", "redis://h:6379", {"OPTIONS": options}).url == "redis://:p%40ss@h:6379/3"


def test_classes_are_read_by_path_or_object() -> None:
    from django_redis.serializers.pickle import PickleSerializer

    result = plan("redis", "redis://h:6379/0", {"OPTIONS": {"SERIALIZER": PickleSerializer}})
    assert result.options == {"serializer": "pickle"}


@pytest.mark.parametrize(
    "entry",
    [
        {"CLIENT_CLASS": "django_redis.client.HerdClient"},
        {"PARSER_CLASS": "redis.connection._HiredisParser"},
        {"PICKLE_VERSION": -1},
        {"CLOSE_CONNECTION": True},
        {"LOG_IGNORED_EXCEPTIONS": True},  # django-redis reads only its global setting
    ],
)
def test_accepted_but_unused_options_are_noted(entry: dict[str, Any]) -> None:
    result = plan("redis", "redis://h:6379/0", {"OPTIONS": entry})
    assert result.options == {}
    [note] = result.notes
    assert next(iter(entry)) in note or "HerdClient" in note


@pytest.mark.parametrize(
    ("entry", "key", "text"),
    [
        ({"CLIENT_CLASS": "django_redis.client.ShardClient"}, "CLIENT_CLASS", "Redis Cluster"),
        ({"CLIENT_CLASS": "django_redis.client.SentinelClient"}, "CLIENT_CLASS", "sentinel"),
        ({"CLIENT_CLASS": "myapp.MyClient"}, "CLIENT_CLASS", "own client"),
        ({"SERIALIZER": "myapp.YamlSerializer"}, "SERIALIZER", "no cachekit equivalent"),
        ({"COMPRESSOR": "django_redis.compressors.lz4.Lz4Compressor"}, "COMPRESSOR", "lz4"),
        ({"COMPRESSOR": 3}, "COMPRESSOR", "dotted path"),
        ({"CONNECTION_POOL_CLASS": "x.Pool"}, "CONNECTION_POOL_CLASS", "pools"),
        ({"REDIS_CLIENT_CLASS": "x.Client"}, "REDIS_CLIENT_CLASS", "redis-py"),
        ({"SENTINELS": [("s", 26379)]}, "SENTINELS", r"redis\+sentinel://"),
        ({"CONNECTION_POOL_KWARGS": {"ssl": True}}, "CONNECTION_POOL_KWARGS", "'ssl'"),
        ({"CONNECTION_POOL_KWARGS": 5}, "CONNECTION_POOL_KWARGS", "dict"),
        ({"SOCKET_TIMEOUT": 1, "socket_timeout": 2}, "SOCKET_TIMEOUT", "keep one"),
    ],
)
def test_what_cachekit_cannot_honour_is_refused(entry: dict[str, Any], key: str, text: str) -> None:
    with pytest.raises(ConfigurationError, match=text) as info:
        plan("redis", "redis://h:6379/0", {"OPTIONS": entry})
    assert info.value.key == key


def test_refusals_are_system_check_errors(settings: Any) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "cachekit_django.cache.RedisCache",
            "LOCATION": "redis://h:6379/0",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.ShardClient"},
        }
    }
    [message] = check_caches()
    assert message.id == "cachekit_django.E001"
    assert "CLIENT_CLASS" in message.hint


def test_the_cluster_backend_reads_them_too() -> None:
    options = {"SOCKET_TIMEOUT": 2, "PASSWORD": "pw", "USERNAME": "u"}
    result = plan("redis+cluster", "h:7000,h:7001", {"OPTIONS": options})
    assert result.options == {"socket_timeout": 2}
    assert result.url == "redis+cluster://u:pw@h:7000,h:7001"  # review finding: E001 before
    _built("redis+cluster", "h:7000,h:7001", {"PASSWORD": "pw"})


@pytest.mark.parametrize(
    ("location", "options", "url"),
    [
        # Review finding: a URL with half the credentials lost the other half.
        ("redis://alice@h:6379/0", {"PASSWORD": "pw"}, "redis://alice:pw@h:6379/0"),
        ("redis://:pw@h:6379/0", {"USERNAME": "bob"}, "redis://bob:pw@h:6379/0"),
        ("redis://a:url@h:6379/0", {"PASSWORD": "option"}, "redis://a:url@h:6379/0"),
        ("redis://h:6379/0", {"PASSWORD": None, "USERNAME": ""}, "redis://h:6379/0"),
        ("redis://h:6379", {"CONNECTION_POOL_KWARGS": {"password": ""}}, "redis://h:6379"),
        ("unix:///tmp/r.sock", {"PASSWORD": "pw"}, "unix://:pw@/tmp/r.sock"),
        (
            "redis+sentinel://s1:26379/mymaster",
            {"CONNECTION_POOL_KWARGS": {"db": 3}},
            "redis+sentinel://s1:26379/mymaster/3",
        ),
        ("redis://h:6379?db=2", {}, "redis://h:6379/2"),  # redis-py's and django-redis's form
    ],
)
def test_credentials_and_db_fill_what_the_url_lacks(
    location: str, options: dict[str, Any], url: str
) -> None:
    assert plan("redis", location, {"OPTIONS": options}).url == url
    _built("redis", location, options)


@pytest.mark.parametrize("value", [None, 0, ssl.CERT_NONE, "none"])
def test_ssl_cert_reqs_as_redis_py_takes_it(value: Any) -> None:
    """Review finding: Heroku's ``{"ssl_cert_reqs": None}`` failed E001."""
    options = {"CONNECTION_POOL_KWARGS": {"ssl_cert_reqs": value}}
    assert plan("redis", "rediss://h:6380/0", {"OPTIONS": options}).options == {
        "ssl_cert_reqs": "none"
    }
    _built("redis", "rediss://h:6380/0", options)


@pytest.mark.parametrize("value", [0, None])
def test_falsy_timeouts_mean_none_as_in_django_redis(value: Any) -> None:
    result = plan("redis", "redis://h:6379/0", {"OPTIONS": {"SOCKET_TIMEOUT": value}})
    assert result.options == {"socket_timeout": None}


def test_errors_name_the_key_the_user_wrote(settings: Any) -> None:
    """Review finding: a bad SOCKET_TIMEOUT was reported as OPTIONS['socket_timeout']."""
    settings.CACHES = {
        "default": {
            "BACKEND": "cachekit_django.cache.RedisCache",
            "LOCATION": "redis://h:6379/0",
            "OPTIONS": {"SOCKET_TIMEOUT": "soon"},
        },
        "flag": {
            "BACKEND": "cachekit_django.cache.RedisCache",
            "LOCATION": "redis://h:6379/0",
            "OPTIONS": {"IGNORE_EXCEPTIONS": "yes"},
        },
    }
    by_alias = {message.obj: message for message in check_caches()}
    assert "['SOCKET_TIMEOUT']" in by_alias["CACHES['default']"].hint
    assert "['IGNORE_EXCEPTIONS']" in by_alias["CACHES['flag']"].hint


def test_warnings_point_at_options(settings: Any) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "cachekit_django.cache.RedisCache",
            "LOCATION": "redis://h:6379/0",
            "OPTIONS": {"PARSER_CLASS": "redis.connection._HiredisParser"},
        }
    }
    [warning] = check_caches()
    assert "['OPTIONS']" in warning.hint


def test_json_serializer_is_noted() -> None:
    options = {"SERIALIZER": "django_redis.serializers.json.JSONSerializer"}
    [note] = plan("redis", "redis://h:6379/0", {"OPTIONS": options}).notes
    assert "datetime" in note


def test_djangos_redis_global_ignore_exceptions_is_the_default(settings: Any) -> None:
    """django-redis's ``DJANGO_REDIS_IGNORE_EXCEPTIONS`` setting keeps a switched site failing
    open; an explicit option still wins."""
    settings.DJANGO_REDIS_IGNORE_EXCEPTIONS = True
    assert plan("redis", "redis://h:6379/0", {}).options == {"fail_open": True}
    assert plan("redis+cluster", "h:7000", {}).options == {"fail_open": True}
    explicit = {"OPTIONS": {"IGNORE_EXCEPTIONS": False}}
    assert plan("redis", "redis://h:6379/0", explicit).options == {"fail_open": False}
    assert plan("memory", "m", {}).options.get("fail_open") is None


@pytest.mark.servers
def test_a_django_redis_entry_works_unchanged(settings: Any) -> None:
    from cachekit.testing.servers import RedisServer

    with RedisServer({"requirepass": "s3cr3t"}) as server:
        location = f"redis://{server.host}:{server.port}/1"
        entry = {"OPTIONS": {**DJANGO_REDIS_OPTIONS, "PASSWORD": "s3cr3t"}}
        settings.CACHES = {
            "r": {"BACKEND": "cachekit_django.cache.RedisCache", "LOCATION": location, **entry}
        }
        warnings = [m for m in check_caches() if m.obj == "CACHES['r']"]
        assert [m.id for m in warnings] == ["cachekit_django.W001"] * 2  # json, retry_on_timeout
        cache = RedisCache(location, entry)
        page = {"html": "<p>hello</p>" * 500}
        cache.set("page", page, 60)
        assert cache.get("page") == page
        info = cache.cachekit.inspect(cache.make_key("page"))
        assert info is not None
        assert (info.serializer, info.compression) == ("json", "zlib")
        with pytest.raises(TypeError):  # as from django-redis's JSONSerializer (json.dumps)
            cache.set("obj", object())
        # IGNORE_EXCEPTIONS: an outage reads as a miss instead of raising.
        server.stop()
        assert cache.get("page", "fallback") == "fallback"
        assert cache.cachekit.get_stats().extra["fail_open_errors_total"] >= 1
        cache.close()
