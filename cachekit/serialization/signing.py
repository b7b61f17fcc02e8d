"""HMAC-SHA256 signing of stored payloads, so a reader only unpickles bytes a key holder wrote.

The secret is never used directly as the MAC key: the key is derived as
``HMAC-SHA256(secret, b"cachekit.serialization.v1")``, so the same secret (typically Django's
``SECRET_KEY``) used elsewhere never yields interchangeable tags, and a future format version can
derive a fresh key. The tag covers every byte before it, header included, so no flag (codec,
compression, "signed") can be flipped without detection.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final, cast

from cachekit.errors import ConfigurationError

__all__ = [
    "MIN_SECRET_BYTES",
    "TAG_SIZE",
    "derive_key",
    "new_mac",
    "secret_option",
    "sign",
    "verify",
]

TAG_SIZE: Final = hashlib.sha256().digest_size
#: Shorter secrets can be brute-forced offline from any signed value read out of the cache.
MIN_SECRET_BYTES: Final = 16
_CONTEXT: Final = b"cachekit.serialization.v1"


def derive_key(secret: object) -> bytes:
    """The MAC key for ``secret`` (``bytes``, or ``str`` taken as UTF-8)."""
    if isinstance(secret, str):
        try:
            secret = secret.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate; the message must not echo the secret
            raise ConfigurationError(
                "secret is a str that is not valid Unicode (a lone surrogate); "
                "pass bytes or a proper str",
                key="secret",
            ) from None
    if not isinstance(secret, bytes):
        raise ConfigurationError(
            f"secret must be bytes or str, got {type(secret).__name__}", key="secret"
        )
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"secret must be at least {MIN_SECRET_BYTES} bytes, got {len(secret)}", key="secret"
        )
    return hmac.digest(secret, _CONTEXT, "sha256")


def secret_option(value: object) -> str | bytes:
    """The providers' ``secret`` option (URL, config dict or keyword): ``value`` itself once
    :func:`derive_key` accepts it, so every provider takes the same secrets and refuses the
    rest up front, without echoing them in the message."""
    derive_key(value)  # ConfigurationError for anything but a usable str or bytes
    return cast("str | bytes", value)


def new_mac(secret: object) -> hmac.HMAC:
    """A keyed HMAC to ``copy()`` per payload: keying once saves about a third of each MAC."""
    return hmac.new(derive_key(secret), digestmod="sha256")


def sign(key: bytes, data: bytes) -> bytes:
    """``data`` followed by its tag."""
    return data + hmac.digest(key, data, "sha256")


def verify(key: bytes, data: bytes) -> bool:
    """Whether the last :data:`TAG_SIZE` bytes of ``data`` are the tag of the bytes before."""
    end = len(data) - TAG_SIZE
    if end < 0:
        return False
    expected = hmac.digest(key, memoryview(data)[:end], "sha256")
    return hmac.compare_digest(expected, data[end:])
