"""A password holding an unencoded ``/``, ``?`` or ``#`` ends a URL's host part early; such a
URL is refused without quoting any of it (the "port" it yields is the password's head), and a
URL nested in an option (a tiered cache's ``l2``) is redacted as one."""

from __future__ import annotations

import pytest

from cachekit import create_cache
from cachekit.config import parse_url, redact_url
from cachekit.errors import ConfigurationError

CUT_SHORT = [
    "redis://app:S3#CRET@10.0.0.5:6379/0",
    "redis://app:S3/CRET@10.0.0.5:6379/0",
    "redis://:S3?CRET@10.0.0.5:6379/0",
    "redis://app:1234#S3CRET@10.0.0.5:6379/0",  # a numeric head reads as a port
    "redis://app:1234/S3CRET@10.0.0.5:6379/0",
    "redis://app:1234?S3CRET@10.0.0.5:6379/0",
    "memcached://a:11211,u:S3#CRET@b:11211",
    "tiered://?l1=memory://&l2=redis://u:S3#CRET@h:6379/0",
    "redis://app:6380?prefix=S3CRET@cache.internal:6379/0",  # an option value as the tail
    "redis://app:6380?p=S3CRET@cache/0",
    # a password that holds an "@" too: the host part then holds one
    "redis://u:S3@CRET?w0rd@h:6379",
    "redis://u:S3@CRET#w0rd@h:6379",
    "redis://u:S3@12/34CRET@h:6379/0",
    "memcached://u:S3@CRET/w@h",
    # a user name holding "?" or "/": the host part has no ":"
    "redis://S3?CRET:pw@h:6379/0",
    "redis://S3/CRET:pw@h:6379/0",
    "grpc://S3/CRET:pw@h:50051/ns",
    # an "&" in a URL given unencoded as an option
    "tiered://?l1=memory://&l2=redis://u:S3&CRET@h:6379",
    "tiered://?l1=memory://&l2=redis://u:S3&name=CRET@h:6379",
    "tiered://?l1=memory://&l2=redis://u:1234&w=S3CRET@h:6379",
]


@pytest.mark.parametrize("url", CUT_SHORT)
def test_a_password_cut_short_is_refused_unquoted(url: str) -> None:
    with pytest.raises(ConfigurationError, match="percent-encoded") as info:
        parse_url(url)
    assert info.value.key == "url"
    for part in ("S3", "CRET", "1234", "6380"):
        assert part not in str(info.value)
    assert redact_url(url) == url.partition("://")[0] + "://***"


@pytest.mark.parametrize("url", CUT_SHORT[:3])
def test_create_cache_names_the_encoding_not_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        create_cache(url).close()
    assert "S3" not in str(info.value)
    assert "percent-encoded" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://h:6379/0?client_name=ops@example.com",
        "redis://[::1]:6379/0?username=a@b",
        "file:///tmp/cache@v2",
        "file://localhost/tmp/cache@v2",
        "redis://u:S3%23CRET@h:6379/0",
        "redis://u:S3%40CRET%3F@h:6379/0",
        "file:///tmp/user@1000/x",
        "unix://:S3CRET@/tmp/redis.sock?db=0",
        "redis+sentinel://:S3CRET@h1:26379,h2:26379/mymaster/0",
        # an "@" in option values and paths that are data, not a password's tail
        "rediss://h:6379/0?ssl_ca_certs=/etc/app@prod/ca.pem",
        "redis+sentinel://s1:26379/mymaster?sentinel_password=S3@CRET/w",
        "grpc://host:50051/ns?token=S3@CRET/x",
        "unix://:S3CRET@/run/redis@6380/redis.sock?db=0",
        "file:///var/cache/app:v2@blue/",
        "tiered://?l2=redis://h:6379/0&l1=memory://",
    ],
)
def test_an_at_sign_where_urls_allow_one_still_parses(url: str) -> None:
    parse_url(url)
    assert "S3" not in redact_url(url)


def test_a_url_in_an_option_is_redacted_as_one() -> None:
    url = "tiered://?l1=memory://&l2=redis://u:S3CRET@h:6379/0"
    assert redact_url(url) == "tiered://?l1=memory://&l2=redis://u:***@h:6379/0"
    encoded = "tiered://?l2=redis%3A%2F%2Fu%3AS3CRET%40h%3A6379%2F0"
    assert redact_url(encoded) == "tiered://?l2=redis://u:***@h:6379/0"


def test_a_refused_secret_option_is_not_quoted() -> None:
    with pytest.raises(ConfigurationError, match="sentinel_password") as info:
        create_cache("redis+sentinel://h:26379/svc", sentinel_password=918273645)
    assert "918273645" not in str(info.value)
    assert info.value.key == "sentinel_password"


def test_a_redacted_nested_url_keeps_its_quoting() -> None:
    """Review finding: the redacted l2 URL was put back unquoted, so its own options read as
    the tiered cache's when the result (what ListNamespaces shows) was parsed again."""
    from urllib.parse import quote

    l2 = quote("redis://:S3CRET@h/0?prefix=t:&socket_timeout=2", safe="")
    redacted = redact_url(f"tiered://?l1=memory://&l2={l2}&l1_ttl=5")
    assert "S3CRET" not in redacted
    assert parse_url(redacted).options == {
        "l1": "memory://",
        "l2": "redis://:***@h/0?prefix=t:&socket_timeout=2",
        "l1_ttl": "5",
    }


def test_a_nested_cache_dict_is_named_by_its_keys_not_quoted() -> None:
    with pytest.raises(ConfigurationError, match=r"keys \['URL'\]") as info:
        create_cache({"url": "tiered://", "l2": {"URL": "redis://u:S3CRET@h:6379"}})
    assert "S3CRET" not in str(info.value)
