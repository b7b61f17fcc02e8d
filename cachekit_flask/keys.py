"""Cache keys built exactly as Flask-Caching 2.x builds them, with the introspection done once.

Flask-Caching calls ``inspect.signature`` several times on every decorated call; the key it
builds only depends on the function's parameter list, which cannot change, so
:class:`Signature` reads it once at decoration time. The formats are Flask-Caching's, byte for
byte, so keys written by one library are found by the other and ``delete_memoized`` works the
same: ``view/<request.path>`` for :meth:`cached`, and for :meth:`memoize`
``b64(hash(f"{name}{args}{kwargs}"))[:16]`` followed by the function's version hash.
"""

from __future__ import annotations

import base64
import inspect
import string
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.datastructures import MultiDict

__all__ = [
    "Signature",
    "function_namespace",
    "get_id",
    "make_template_fragment_key",
    "new_version_hash",
    "query_args_as_pairs",
]

TEMPLATE_FRAGMENT_KEY_TEMPLATE = "_template_fragment_cache_%s%s"
_VALID = frozenset(string.ascii_letters + string.digits + "_.")
_NULL_CONTROL = str.maketrans({c: None for c in map(chr, range(256)) if c not in _VALID})

QueryArgs = str | Mapping[str, Any] | Iterable[tuple[str, Any]]


def make_template_fragment_key(fragment_name: str, vary_on: list[str] | None = None) -> str:
    """The key of a ``{% cache %}`` fragment (Flask-Caching's format)."""
    if vary_on:
        fragment_name = f"{fragment_name}_"
    else:
        vary_on = []
    return TEMPLATE_FRAGMENT_KEY_TEMPLATE % (fragment_name, "_".join(vary_on))


def get_id(obj: Any) -> str:
    """An instance's identity in keys: ``__caching_id__()`` if it has one, else ``repr``."""
    caching_id = getattr(obj, "__caching_id__", None)
    if caching_id is None:
        return repr(obj)
    return str(caching_id())


def new_version_hash() -> str:
    """A fresh memoize version: six base64 characters of a random UUID, as Flask-Caching."""
    return base64.b64encode(uuid.uuid4().bytes)[:6].decode("utf-8")


def query_args_as_pairs(query_args: QueryArgs) -> list[tuple[str, str]]:
    """A query string, mapping or pair iterable as ``(key, str(value))`` pairs."""
    if isinstance(query_args, str):
        return parse_qsl(query_args.lstrip("?"), keep_blank_values=True)
    items: Iterable[tuple[str, Any]]
    if isinstance(query_args, MultiDict):
        items = query_args.items(multi=True)
    elif isinstance(query_args, Mapping):
        items = query_args.items()
    else:
        items = query_args
    return [(key, str(value)) for key, value in items]


class Signature:
    """What key building needs from a function's signature, read once."""

    __slots__ = ("arg_names", "defaults", "first", "namespace", "nargs", "positional")

    def __init__(self, f: Callable[..., Any]) -> None:
        params = list(inspect.signature(f).parameters.values())
        #: Names of the positional-or-keyword parameters (Flask-Caching's ``get_arg_names``).
        self.arg_names: tuple[str, ...] = tuple(
            p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD
        )
        self.nargs = len(self.arg_names)
        # Flask-Caching indexes defaults by position in the *whole* parameter list.
        self.defaults: tuple[Any, ...] = tuple(
            None if p.default is inspect.Parameter.empty else p.default
            for p in params[: self.nargs]
        )
        self.first: str | None = self.arg_names[0] if self.arg_names else None
        #: Whether any parameter is positional (``wants_args`` of ``unless``/``forced_update``).
        self.positional = any(p.kind != p.KEYWORD_ONLY for p in params)
        module = f.__module__
        name = getattr(f, "__qualname__", None) or f.__name__
        self.namespace: str = f"{module}.{name}".translate(_NULL_CONTROL)

    def instance_namespace(self, token: str) -> str:
        """The per-instance namespace of a method (``module.Class.method.<repr(self)>``)."""
        raw = self.namespace + "." + token
        return raw.translate(_NULL_CONTROL)

    def key_args(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], ignore: frozenset[str]
    ) -> tuple[tuple[Any, ...], OrderedDict[str, Any]]:
        """Arguments normalised so ``f(1, b=2)`` and ``f(a=1, b=2)`` share a key."""
        new_args: list[Any] = []
        arg_num = 0
        nargs = len(args)
        used: set[str] = set()
        for i, name in enumerate(self.arg_names):
            if name in ignore:
                arg = None
                arg_num += 1
            elif i == 0 and name in ("self", "cls"):
                if not args:
                    kind = "classmethod" if name == "cls" else "method"
                    raise ValueError(
                        f"When using `delete_memoized` on a `{kind}` you must provide the "
                        f"`{name}` argument as the first positional argument."
                    )
                arg = get_id(args[0])
                arg_num += 1
            elif name in kwargs:
                arg = kwargs[name]
                used.add(name)
            elif arg_num < nargs:
                arg = args[arg_num]
                arg_num += 1
            else:
                arg = self.defaults[i]
                arg_num += 1
            new_args.append(arg)
        new_args.extend(args[self.nargs :])
        rest = sorted((k, v) for k, v in kwargs.items() if k not in ignore and k not in used)
        return tuple(new_args), OrderedDict(rest)


def function_namespace(f: Callable[..., Any], args: Any = None) -> tuple[str, str | None]:
    """``(namespace, instance namespace)`` of a memoized function or bound method.

    Flask-Caching's function, read live: ``delete_memoized`` may be handed a bound method or a
    classmethod, whose signatures differ from the function that was decorated.
    """
    params = inspect.signature(f).parameters.values()
    m_args = [p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
    instance_token = None
    instance_self = getattr(f, "__self__", None)
    if instance_self and not inspect.isclass(instance_self):
        instance_token = get_id(instance_self)
    elif m_args and m_args[0] == "self" and args:
        instance_token = get_id(args[0])
    if m_args and m_args[0] == "cls" and not (args and inspect.isclass(args[0])):
        raise ValueError(
            "When using `delete_memoized` on a `@classmethod` you must provide the class as "
            "the first argument"
        )
    name = getattr(f, "__qualname__", None) or f.__name__
    ns = f"{f.__module__}.{name}".translate(_NULL_CONTROL)
    ins = f"{f.__module__}.{name}.{instance_token}".translate(_NULL_CONTROL)
    return ns, ins if instance_token else None
