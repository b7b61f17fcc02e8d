"""The ``file://`` provider's options: what ``file:///dir?...`` and config dicts accept.

Constructor arguments go through the same parsers (:func:`checked`), so a bad value raises a
:class:`~cachekit.errors.ConfigurationError` that names its key however the cache is built.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ..config import Option, bool_option, int_option, object_option, seconds_option, text_option
from ..errors import ConfigurationError
from ..metrics.latency import MAX_SAMPLE_EVERY
from ..serialization import SERIALIZERS, Serializer, make_serializer
from ..serialization.signing import secret_option

__all__ = ["OPTIONS", "build_serializer", "checked", "directory_option", "mode_option"]


def _serializer_option(value: Any) -> Any:
    if isinstance(value, str):
        if value not in SERIALIZERS:
            raise ConfigurationError(f"accepted values: {', '.join(sorted(SERIALIZERS))}")
        return value
    if isinstance(value, Serializer):
        return value
    raise TypeError("expected a serializer name or a Serializer")


def mode_option(value: Any) -> int:
    """File permissions: an int (``0o640``) or an octal string (``"640"``, ``"0o640"``)."""
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        value = int(text, 8)
    if isinstance(value, bool) or not isinstance(value, int) or not 0o400 <= value <= 0o777:
        raise ValueError("must grant the owner read (0o400) and stay within 0o777")
    if not value & 0o200:
        raise ValueError("must let the owner write (0o200)")
    return value


def directory_option(value: Any) -> str:
    path = os.fspath(value)
    if not isinstance(path, str) or not path:
        raise TypeError("expected a directory path")
    return path


#: Options accepted in ``file:///path?...`` URLs and config dicts.
OPTIONS: dict[str, Option] = {
    "name": text_option("a name for stats and metrics"),
    "directory": Option(directory_option, "a directory path (or the URL's path)"),
    "max_entries": int_option(minimum=1, allow_none=True),
    "default_ttl": seconds_option(),
    "serializer": Option(_serializer_option, "a serializer name or a Serializer"),
    "compression": text_option("auto, none, zlib or zstd"),
    "compress_threshold": int_option(minimum=0),
    "secret": Option(secret_option, "an HMAC key (str or bytes) signing stored values"),
    "mode": Option(mode_option, "file permissions such as 0o600 or '640'"),
    "stampede_timeout": seconds_option(),
    "fail_open": bool_option(),
    "clock": object_option("a callable returning epoch seconds"),
    "stats_sample_every": int_option(minimum=1, maximum=MAX_SAMPLE_EVERY),
}


def checked(key: str, value: Any, parse: Callable[[Any], Any]) -> Any:
    """Validate a constructor argument as the option parser would, naming the key."""
    try:
        return parse(value)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{key}: {exc}", key=key) from None
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{key}: {exc} (got {value!r})", key=key) from None


def build_serializer(
    serializer: str | Serializer,
    compression: str | None,
    compress_threshold: int | None,
    secret: str | bytes | None,
) -> Serializer:
    """The serializer the options describe (codec options apply to one given by name)."""
    codec_options: dict[str, Any] = {
        name: value
        for name, value in (
            ("compression", compression),
            ("compress_threshold", compress_threshold),
            ("secret", secret),
        )
        if value is not None
    }
    if isinstance(serializer, str):
        return make_serializer(serializer, **codec_options)
    if codec_options:
        raise ConfigurationError(
            "compression/secret options apply to a serializer given by name",
            key=next(iter(codec_options)),
        )
    if not isinstance(serializer, Serializer):
        raise ConfigurationError(
            f"serializer must be a name or a Serializer, got {serializer!r}", key="serializer"
        )
    return serializer
