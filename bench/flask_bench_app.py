"""The app ``bench.flask_wsgi`` serves: one cached view and one view over a memoized function.

Built with the extension named by ``BENCH_EXT`` (``cachekit_flask`` or ``flask_caching``) and
the Flask config in ``BENCH_CONFIG`` (JSON), so both libraries run the very same code; gunicorn
loads ``bench.flask_bench_app:app``.
"""

from __future__ import annotations

import importlib
import json
import os
import uuid
from typing import Any

from flask import Flask

EXTENSION = os.environ.get("BENCH_EXT", "cachekit_flask")
CONFIG: dict[str, Any] = json.loads(os.environ.get("BENCH_CONFIG", '{"CACHE_TYPE": "SimpleCache"}'))

app = Flask(__name__)
app.config.update(CONFIG)
cache = importlib.import_module(EXTENSION).Cache(app)

#: A ~1 KB page, like a small rendered fragment.
PAGE = "<ul>" + "".join(f"<li>item {n}</li>" for n in range(60)) + "</ul>"


@app.get("/view")
@cache.cached(timeout=300)
def view() -> str:
    """Cached under ``view//view``; the render id shows whether a response was cached."""
    return f"<!-- render {uuid.uuid4().hex} -->{PAGE}"


@cache.memoize(timeout=300)
def product(product_id: int, currency: str = "EUR") -> dict[str, Any]:
    """A memoized lookup (key built from the arguments and the version hash)."""
    return {
        "id": product_id,
        "name": f"product {product_id}",
        "price": 9.99,
        "currency": currency,
        "render": uuid.uuid4().hex,
    }


@app.get("/memo")
def memo() -> str:
    item = product(7, currency="EUR")
    return f"{item['name']} {item['price']} {item['currency']} {item['render']}"
