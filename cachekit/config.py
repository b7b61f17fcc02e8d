"""Configuration: URLs and small dicts, validated up front with errors that name the key.

A provider declares its options as a ``{name: Option}`` table; :func:`parse_options` checks a
user's mapping against it, so a misspelled option or a bad value fails at start-up with a
:class:`~cachekit.errors.ConfigurationError` naming the key and what it accepts, never with a
silent default.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from .errors import ConfigurationError

__all__ = [
    "Option",
    "ParsedURL",
    "bool_option",
    "choice_option",
    "int_option",
    "named_options",
    "parse_options",
    "parse_url",
    "redact_url",
    "seconds_option",
    "size_option",
]

_NONE_WORDS = frozenset({"none", "null", "unbounded", "forever"})
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


@dataclass(frozen=True, slots=True)
class Option:
    """One accepted option: how to parse it and what to say when it is wrong."""

    parse: Callable[[Any], Any]
    accepts: str
    doc: str = ""


@dataclass(frozen=True, slots=True)
class ParsedURL:
    """A cache URL split into parts, with its query string as options."""

    scheme: str
    hosts: tuple[tuple[str, int | None], ...]
    path: str
    username: str | None
    password: str | None
    options: dict[str, str] = field(default_factory=dict)
    raw: str = ""


#: Query options whose value is a secret (``?password=...``), by a part of their name.
_SECRET_OPTIONS = ("password", "secret", "token")


def redact_url(url: str) -> str:
    """``url`` with its password, and any query option named like a secret, as ``***``: for
    error messages and listings, which reach logs and clients. Split as :func:`parse_url`
    splits, so it never raises on a URL that function was given."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    if _password_cut_short(rest):
        return f"{scheme}://***"
    rest, hash_mark, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        user, has_password, _password = userinfo.partition(":")
        netloc = f"{user}:***@{hosts}" if has_password else f"{user}@{hosts}"
    query = "&".join(_redact_option(item) for item in query.split("&") if item)
    return f"{scheme}://{netloc}{slash}{path}{question}{query}{hash_mark}{fragment}"


def _redact_option(item: str) -> str:
    """A ``name=value`` query item with a secret value hidden; a value that is itself a URL
    (a tiered cache's ``l2=redis://u:pw@host``) is redacted as one."""
    name, _, value = item.partition("=")
    if any(secret in name.lower() for secret in _SECRET_OPTIONS):
        return f"{name}=***"
    url = unquote(value)
    if "://" not in url:
        return item
    redacted = redact_url(url)
    # Quoted as it came, so that the result still parses as the URL it stands for.
    return f"{name}={redacted if url == value else quote(redacted, safe=':/@*[],')}"


def parse_url(url: str) -> ParsedURL:
    """Split a cache URL; comma-separated hosts are kept apart (``memcached://a:1,b:2``)."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"a cache URL looks like 'memory://?max_entries=1000', got {url!r}", key="url"
        )
    scheme, _, rest = url.partition("://")
    if _password_cut_short(rest):
        raise ConfigurationError(
            f"cannot split {scheme}://***: a user name or password holding '/', '?' or '#' (or "
            "'&', in a URL given as an option) must be percent-encoded (%2F, %3F, %23, %26)",
            key="url",
        )
    rest, _, _fragment = rest.partition("#")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, has_pw, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if has_pw else None
    hosts: list[tuple[str, int | None]] = []
    for part in filter(None, netloc.split(",")):
        host, port = _split_host(part)
        hosts.append((host, port))
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name in options:
            raise ConfigurationError(
                f"option {name!r} is given twice in {redact_url(url)!r}", key=name
            )
        options[name] = value
    return ParsedURL(scheme.lower(), tuple(hosts), unquote(path), username, password, options, url)


#: An option value ending as a host part would (``@cache:6379/0``, ``@cache/0``): a password's
#: tail after an unencoded ``?``, where data (``ops@example.com``, a path) does not end so.
_HOST_AFTER_AT = re.compile(r"@[\w.-]+(?::\d+(?:/\d*)?|/\d*)$")


def _password_cut_short(rest: str) -> bool:
    """Whether an unencoded ``/``, ``?`` or ``#`` in the user info (or ``&`` in a URL given as
    an option) ended the host part early (``u:pa#ss@host``), so that the user info's tail and an
    ``@`` follow where no URL of ours has one: in a fragment, an option name, a path after a
    host and a ``user:`` or ``@``, an option value ending as ``@host:port``, after a nested URL
    whose host part was cut, or the host part's "port" is the password's head. Such a URL is
    never quoted, even redacted."""
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    tail = rest[len(netloc) :]
    if "@" not in tail:
        return False
    before_fragment, _, fragment = tail.partition("#")
    path, _, query = before_fragment.partition("?")
    options = [item.partition("=") for item in query.split("&")]
    if "@" in fragment or any("@" in name for name, _, _ in options):
        return True
    host = netloc.rpartition("@")[2]
    if "@" in path and host and (":" in netloc or "@" in netloc or ":" in path.split("@")[0]):
        return True
    for index, (_, _, value) in enumerate(options):
        nested = value.partition("://")[2]
        if nested and _userinfo_cut(nested) and any("@" in v for _, _, v in options[index:]):
            return True  # l2=redis://u:pa&rt=x@h: the nested URL's password ran into "&"
    if ":" not in netloc:
        return False
    if any(
        _HOST_AFTER_AT.search(value)
        for name, _, value in options
        if not any(secret in name.lower() for secret in _SECRET_OPTIONS)
    ):
        return True
    return _bad_port(host)


def _userinfo_cut(rest: str) -> bool:
    """Whether a nested URL's host part (``rest`` after ``://``) may be ``user:password`` cut
    before its ``@``: no ``@`` in it, and a ``:`` (a port would be the password's head)."""
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    return "@" not in netloc and ":" in netloc


def _bad_port(host: str) -> bool:
    """Whether a host part (``h1:1,h2:2``, ``[::1]:6379``) holds a port that is no number."""
    for part in host.split(","):
        port_text = part[1:].partition("]")[2] if part.startswith("[") else part
        port_text = port_text.partition(":")[2]
        if port_text and not port_text.isdigit():
            return True
    return False


def _split_host(part: str) -> tuple[str, int | None]:
    if part.startswith("["):  # [::1]:6379
        host, _, port_part = part[1:].partition("]")
        port_text = port_part.lstrip(":")
    else:
        host, _, port_text = part.partition(":")
    if not port_text:
        return host, None
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigurationError(f"bad port {port_text!r} in host {part!r}", key="url") from None
    if not 0 < port < 65536:
        raise ConfigurationError(f"port {port} out of range in host {part!r}", key="url")
    return host, port


def parse_options(
    where: str, raw: Mapping[str, Any], table: Mapping[str, Option]
) -> dict[str, Any]:
    """Validate ``raw`` against ``table``; ``where`` names the provider in error messages."""
    parsed: dict[str, Any] = {}
    for key, value in raw.items():
        option = table.get(key)
        if option is None:
            raise ConfigurationError(
                f"unknown option {key!r} for {where}; accepted options: {', '.join(sorted(table))}",
                key=key,
            )
        try:
            parsed[key] = option.parse(value)
        except ConfigurationError as exc:  # the parser's own message, which quotes no secret
            raise ConfigurationError(f"{where}: option {key!r}: {exc}", key=key) from None
        except (TypeError, ValueError) as exc:
            got = f"{value!r} ({exc})"
            if any(secret in key.lower() for secret in _SECRET_OPTIONS):  # never quote one
                got = f"a value of type {type(value).__name__} (not shown: a secret)"
            elif isinstance(value, Mapping):  # a nested cache's options: URLs, secrets
                got = f"a {type(value).__name__} with keys {sorted(map(str, value))} ({exc})"
            elif isinstance(value, str) and "://" in value:
                got = f"{redact_url(value)!r} ({exc})"
            raise ConfigurationError(
                f"{where}: option {key!r} accepts {option.accepts}, got {got}", key=key
            ) from None
    return parsed


def named_options(url: ParsedURL, options: Mapping[str, Any], *, example: str) -> dict[str, Any]:
    """The options of a local cache's URL (``scheme://[NAME]?option=value``), which may name
    the cache and hold nothing else; ``options`` override the query string, and the host part
    is the ``name`` unless one is given. ``example`` is shown when the URL holds more."""
    if (
        url.path
        or len(url.hosts) > 1
        or (url.hosts and url.hosts[0][1] is not None)
        or url.username is not None
        or url.password is not None
    ):
        raise ConfigurationError(
            f"{url.scheme}:// takes at most a name ({example}), got {redact_url(url.raw)!r}",
            key="url",
        )
    merged: dict[str, Any] = {**url.options, **options}
    if url.hosts and "name" not in merged:
        merged["name"] = url.hosts[0][0]
    return merged


def _is_none_word(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS)


def int_option(
    *, minimum: int | None = None, maximum: int | None = None, allow_none: bool = False
) -> Option:
    """An integer (from an int or a decimal string), optionally bounded, optionally ``None``."""

    def parse(value: Any) -> int | None:
        if allow_none and _is_none_word(value):
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise TypeError(f"expected an integer, not {type(value).__name__}")
        number = int(value)
        if minimum is not None and number < minimum:
            raise ValueError(f"must be >= {minimum}")
        if maximum is not None and number > maximum:
            raise ValueError(f"must be <= {maximum}")
        return number

    bounds = f" >= {minimum}" if minimum is not None else ""
    return Option(parse, f"an integer{bounds}" + (" or 'none'" if allow_none else ""))


def size_option(*, allow_none: bool = False) -> Option:
    """A byte size: an int, or a string with a unit (``64MB``, ``512k``, ``1GiB``)."""

    def parse(value: Any) -> int | None:
        if allow_none and _is_none_word(value):
            return None
        if isinstance(value, bool):
            raise TypeError("expected a size, not a bool")
        if isinstance(value, int):
            number = value
        elif isinstance(value, str):
            match = _SIZE_RE.match(value)
            unit = match.group(2).lower() if match else None
            if match is None or unit not in _SIZE_UNITS:
                raise ValueError("expected a size such as 1048576, '64MB' or '512KiB'")
            number = int(float(match.group(1)) * _SIZE_UNITS[unit])
        else:
            raise TypeError(f"expected a size, not {type(value).__name__}")
        if number <= 0:
            raise ValueError("must be positive")
        return number

    return Option(
        parse, "a byte size such as 1048576 or '64MB'" + (" or 'none'" if allow_none else "")
    )


def seconds_option(*, allow_none: bool = True, positive: bool = True) -> Option:
    """A duration: seconds as a number or numeric string, or a ``timedelta``; ``none`` = forever."""

    def parse(value: Any) -> float | None:
        if allow_none and _is_none_word(value):
            return None
        if isinstance(value, bool):
            raise TypeError("expected seconds, not a bool")
        if isinstance(value, timedelta):
            seconds = value.total_seconds()
        elif isinstance(value, (int, float, str)):
            seconds = float(value)
        else:
            raise TypeError(f"expected seconds, not {type(value).__name__}")
        if not math.isfinite(seconds):
            raise ValueError("must be finite")
        if positive and seconds <= 0:
            raise ValueError("must be positive (use 'none' for never)")
        return seconds

    return Option(parse, "a number of seconds" + (" or 'none'" if allow_none else ""))


def text_option(doc: str) -> Option:
    """A string as given: ``str(None)`` would quietly make the name ``'None'``."""

    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, not {type(value).__name__}")
        return value

    return Option(parse, "a string", doc)


def bool_option() -> Option:
    """A boolean: a bool or one of ``1/0, true/false, yes/no, on/off``."""

    def parse(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            word = value.strip().lower()
            if word in _TRUE_WORDS:
                return True
            if word in _FALSE_WORDS:
                return False
        raise ValueError("expected true or false")

    return Option(parse, "true or false")


def choice_option(choices: Callable[[], Iterable[str]] | Iterable[str]) -> Option:
    """One of a set of names; ``choices`` may be a callable so registries stay lazy."""

    def names() -> list[str]:
        return sorted(choices() if callable(choices) else choices)

    def parse(value: Any) -> str:
        if not isinstance(value, str) or value not in names():
            raise ConfigurationError(f"accepted values: {', '.join(names())}; got {value!r}")
        return value

    return Option(parse, "one of the registered names")


def object_option(kind: str, check: Callable[[Any], bool] = callable) -> Option:
    """A Python object (dict configuration only), e.g. a clock or a listener callable."""

    def parse(value: Any) -> Any:
        if not check(value):
            raise TypeError(f"expected {kind}")
        return value

    return Option(parse, kind)
