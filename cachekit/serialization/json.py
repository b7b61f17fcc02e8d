"""The JSON codec: orjson when installed, the standard library otherwise, with one semantics.

Values written on one machine are read on others that may lack the ``fast`` extra (and, later,
in other languages), so both paths must accept the same values and decode them to the same
values and types; only the spelling of a float may differ (orjson writes ``1e-05`` as
``0.00001``). The stdlib encoder, configured as compact UTF-8 without NaN, is the reference.
orjson is only an accelerator: it runs without the options that widen what it accepts
(datetimes and dataclasses are passed through, to be refused), and whatever it refuses --
integers beyond 64 bits, non-``str`` keys, ``tuple`` and ``float`` subclasses, nesting beyond
255 levels -- goes to the reference encoder. The reference in turn adopts orjson's extensions
(enums as their value, UUIDs as strings) and its rule for non-finite floats (``null``, as
JavaScript's ``JSON.stringify``). Both then refuse integers outside [-2**63, 2**64 - 1], which
orjson's reader and most other languages cannot represent exactly, and a dict two of whose keys
become one JSON key (``{1: "a", "1": "b"}``), which would come back with an entry lost.
"""

from __future__ import annotations

import enum
import json
import math
import re
import uuid
from functools import partial
from types import ModuleType
from typing import Any, ClassVar, Final, Unpack

from cachekit.errors import ConfigurationError, SerializationError

from . import _optional
from .base import CodecSerializer, SerializerOptions
from .header import Codec
from .reader import Decoder

__all__ = ["JsonSerializer", "make_decoder", "stdlib_dumps"]

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1
# An out-of-range integer prints as at least 19 digits; only then is the value walked.
_LONG_DIGITS: Final = re.compile(rb"[0-9]{19}")
# What a key made from a non-str key (1, 2.5, True, None) looks like; only when one is written
# is the value walked for two keys of a dict that became one. Outside a key, '":' can follow
# only an escaped quote (a false alarm, which costs a walk). Led by a literal: a fast scan.
_CONVERTED_KEY: Final = re.compile(rb'"(?:-?[0-9][0-9.e+-]*|true|false|null)":')


def _default(obj: object) -> Any:
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, uuid.UUID):
        return str(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_default
)


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value:  # inf - inf is nan; a Python call per float literal, stdlib path only
        raise ValueError(f"number {text[:40]!r} is too large for a double")
    return value


# orjson refuses a number that overflows a double (1e400) and a lone surrogate escape
# ("\ud800", which no UTF-8 writer can produce); the stdlib decoder would read inf and a str that
# cannot be encoded again. Surrogates are checked only when the body holds a "\ud" escape.
_DECODER: Final = json.JSONDecoder(parse_float=_finite_float, parse_constant=_reject_constant)
_SURROGATE_CHECK: Final = json.JSONEncoder(ensure_ascii=False, check_circular=False)


def _portable(value: Any, active: set[int]) -> Any:
    """A copy with non-finite floats as None; raises for out-of-range integers and cycles."""
    if isinstance(value, enum.Enum):
        return _portable(value.value, active)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int) and not isinstance(value, bool):
        if not _INT_MIN <= value <= _INT_MAX:
            raise TypeError("Integer exceeds 64-bit range")
        return value
    if not isinstance(value, (dict, list, tuple)):
        return value
    if id(value) in active:
        raise ValueError("Circular reference detected")
    active.add(id(value))
    if isinstance(value, dict):
        copy: Any = {key: _portable(item, active) for key, item in value.items()}
    else:
        copy = [_portable(item, active) for item in value]
    active.discard(id(value))
    return copy


def _json_key(key: Any) -> str:
    """The text the encoder writes for a dict key it accepted (its order of tests)."""
    if isinstance(key, str):
        return str.__str__(key)
    if isinstance(key, float):
        return float.__repr__(key)
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    return int.__repr__(key)


def _check_keys(value: Any) -> None:
    """Raise if two keys of a dict became one JSON key: ``{1: "a", "1": "b"}`` would be
    written with both and read back as ``{"1": "b"}``, an entry silently lost. Called once
    the encoder took ``value``: no cycles, and only keys it can convert."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(type(key) is str for key in item):
                seen: dict[str, Any] = {}
                for key in item:
                    text = _json_key(key)
                    first = seen.setdefault(text, key)
                    if first is not key:
                        raise ValueError(
                            f"dict keys {first!r} and {key!r} both become the JSON key {text!r}"
                        )
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, enum.Enum):  # written as its value (_default)
            stack.append(item.value)


def stdlib_dumps(value: Any) -> bytes:
    """The reference encoding (see the module docstring)."""
    try:
        text = _ENCODER.encode(value)
    except ValueError:
        text = _ENCODER.encode(_portable(value, set()))  # NaN/Infinity -> null, like orjson
    body = text.encode("utf-8")
    if _LONG_DIGITS.search(body) is not None:
        _portable(value, set())
    if _CONVERTED_KEY.search(body) is not None:
        _check_keys(value)
    return body


def _orjson_dumps(orjson_dumps: Any, option: int, value: Any) -> bytes:
    try:
        return orjson_dumps(value, None, option)  # type: ignore[no-any-return]
    except TypeError:  # orjson.JSONEncodeError included: let the reference decide
        return stdlib_dumps(value)


def _stdlib_loads(body: bytes) -> Any:
    value = _DECODER.decode(body.decode("utf-8"))
    if b"\\ud" in body or b"\\uD" in body:
        # Paired escapes became one code point; any surrogate left was alone: UnicodeEncodeError.
        _SURROGATE_CHECK.encode(value).encode("utf-8")
    return value


def _load_orjson(use_orjson: bool | None) -> ModuleType | None:
    if use_orjson is None:
        return _optional.load("orjson")
    if type(use_orjson) is not bool:
        raise ConfigurationError(
            f"use_orjson must be True, False or None, got {use_orjson!r}", key="use_orjson"
        )
    if use_orjson:
        return _optional.require("orjson", key="use_orjson", what="use_orjson=True")
    return None


def make_decoder(use_orjson: bool | None = None) -> Decoder:
    """A JSON decoder using orjson (``None``: when installed) or the standard library."""
    orjson = _load_orjson(use_orjson)
    loads = _stdlib_loads if orjson is None else orjson.loads

    def decode_json(body: bytes, extras: bytes) -> Any:
        try:
            return loads(body)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            raise SerializationError(f"corrupt JSON payload: {exc}") from exc

    return decode_json


class JsonSerializer(CodecSerializer):
    """JSON-native values: None, bool, int, float, str, list/tuple (read back as list), dict.

    ``use_orjson``: ``None`` uses orjson when installed, ``False`` never, ``True`` requires it.
    """

    name: ClassVar[str] = "json"
    codec_id: ClassVar[Codec] = Codec.JSON

    def __init__(
        self, *, use_orjson: bool | None = None, **options: Unpack[SerializerOptions]
    ) -> None:
        super().__init__(**options)
        orjson = _load_orjson(use_orjson)
        self.uses_orjson = orjson is not None
        if orjson is None:
            self._encode = stdlib_dumps
        else:
            option = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
            self._encode = partial(_orjson_dumps, orjson.dumps, option)
        self._encode_errors = (TypeError, ValueError, RecursionError)
        self._decoders[Codec.JSON] = make_decoder(self.uses_orjson)
