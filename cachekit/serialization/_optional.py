"""Optional drivers, imported on first use and never at module import time.

Every optional import goes through :func:`load`, so a test can make a driver look absent by
replacing this one function, and every error names the extra that installs the driver.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

from cachekit.errors import ConfigurationError, SerializationError

__all__ = ["EXTRAS", "load", "missing", "require", "unavailable"]

#: Importable name -> (distribution to install, cachekit extra that brings it).
EXTRAS = {
    "orjson": ("orjson", "fast"),
    "msgpack": ("msgpack", "fast"),
    "zstandard": ("zstandard", "fast"),
    "google.protobuf": ("protobuf", "grpc"),
}


@functools.cache
def load(name: str) -> ModuleType | None:
    """The module, or ``None`` when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _hint(name: str) -> str:
    package, extra = EXTRAS[name]
    return f"the {package!r} package, which is not installed: pip install 'cachekit[{extra}]'"


def unavailable(name: str, *, key: str, what: str) -> ConfigurationError:
    """The error for an option that needs a driver this process lacks."""
    return ConfigurationError(f"{what} needs {_hint(name)}", key=key)


def require(name: str, *, key: str, what: str) -> ModuleType:
    """The module, or a :class:`ConfigurationError` naming the option and the extra."""
    module = load(name)
    if module is None:
        raise unavailable(name, key=key, what=what)
    return module


def missing(name: str, what: str) -> SerializationError:
    """The error for a stored payload that needs a driver this process lacks."""
    return SerializationError(f"cannot decode a {what} payload: it needs {_hint(name)}")
