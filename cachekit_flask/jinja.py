"""The Jinja ``{% cache timeout [name[, vary_on...]] %}...{% endcache %}`` fragment tag.

Flask-Caching's tag and key format (``_template_fragment_cache_<name>[_<vary>...]``), so a key
from :func:`make_template_fragment_key` deletes a fragment; ``{% cache 'del' name %}`` deletes
and renders. A cache failure renders the block uncached unless the app is in debug mode.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser

from .keys import make_template_fragment_key

__all__ = ["JINJA_CACHE_ATTR_NAME", "CacheExtension"]

JINJA_CACHE_ATTR_NAME = "_template_fragment_cache"

logger = logging.getLogger("cachekit_flask")


class CacheExtension(Extension):
    """Adds the ``cache`` tag; the extension object is read from the Jinja environment."""

    tags: ClassVar[set[str]] = {"cache"}  # type: ignore[misc]

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        args: list[nodes.Expr] = [parser.parse_expression()]
        if parser.stream.skip_if("comma"):
            args.append(parser.parse_expression())
        else:  # no name: the template's file name and line, as Flask-Caching
            args.append(nodes.Const(f"{parser.filename}{lineno}"))
        vary_on: list[nodes.Expr] = []
        while parser.stream.skip_if("comma"):
            vary_on.append(parser.parse_expression())
        args.append(nodes.List(vary_on) if vary_on else nodes.Const([]))
        body = parser.parse_statements(("name:endcache",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_cache", args), [], [], body).set_lineno(lineno)

    def _cache(
        self, timeout: Any, fragment_name: str, vary_on: list[str], caller: Callable[[], str]
    ) -> Any:
        cache = getattr(self.environment, JINJA_CACHE_ATTR_NAME)
        key = make_template_fragment_key(fragment_name, vary_on=vary_on)
        try:
            if timeout == "del":
                cache.delete(key)
                return caller()
            rv = cache.get(key)
            if rv is None:
                rv = caller()
                cache.set(key, rv, timeout=timeout)
            return rv
        except Exception:
            if cache._debug():
                raise
            logger.exception("Exception possibly due to cache backend.")
            return caller()
