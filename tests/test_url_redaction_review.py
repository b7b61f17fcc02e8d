"""A bad provider URL's error message never carries its password (it reaches logs, gRPC
clients and the CLI's stderr)."""

from __future__ import annotations

import pytest

from cachekit import create_cache
from cachekit.config import redact_url
from cachekit.errors import ConfigurationError


@pytest.mark.parametrize(
    "url",
    [
        "redis://app:S3CRET@10.0.0.5:6379/x",
        "redis://app:S3CRET@10.0.0.5:6379/-1",
        "redis://app:S3CRET@h1:6379,h2:6379/0",
        "rediss://:S3CRET@h:6379/0/1",
        "redis+sentinel://:S3CRET@h1:26379/",
        "redis+sentinel://:S3CRET@h1:26379/svc/x",
        "redis+cluster://u:S3CRET@h1:7000/3",
        "unix://u:S3CRET@host/",
        "memcached://u:S3CRET@h:11211",
        "memory://u:S3CRET@name",
        "redis://h:6379/0?password=S3CRET&password=S3CRET",
        "grpc://u:S3CRET@a:1,b:2/default",
    ],
)
def test_bad_url_errors_hide_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        create_cache(url).close()
    assert "S3CRET" not in str(info.value)
    assert "***" in str(info.value)


def test_redact_url_keeps_everything_but_secrets() -> None:
    assert redact_url("memory://?max_entries=5") == "memory://?max_entries=5"
    assert redact_url("redis://u:p@[::1]:6379/0?db=1#f") == "redis://u:***@[::1]:6379/0?db=1#f"
    assert redact_url("redis://u@h/0?auth_token=t&x=1") == "redis://u@h/0?auth_token=***&x=1"
    assert redact_url("redis://u:p@[bad/0") == "redis://u:***@[bad/0"  # never raises
