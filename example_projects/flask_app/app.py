"""A small shop on cachekit_flask: cached views, memoized lookups, fragments and live stats.

Run it with ``flask --app example_projects/flask_app/app.py run``; it uses the embedded memory
provider unless ``CACHEKIT_URL`` names another one (``CACHEKIT_URL=redis://127.0.0.1:6379/0``).
Pages:

* ``/`` - the catalogue, a cached view tagged ``catalog``;
* ``/product/<id>`` - a cached view over a memoized (slow) lookup, with a cached reviews fragment;
* ``/search?q=...`` - cached per query string;
* ``/stats`` - live cache statistics (never cached), ``/stats.json`` the same as JSON;
* ``POST /invalidate`` - drops everything tagged ``catalog``; ``/metrics`` - Prometheus.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, abort, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from cachekit_flask import Cache

#: The "database": slow on purpose, so that what the cache saves shows.
PRODUCTS: dict[int, dict[str, Any]] = {
    1: {"name": "Green tea", "price": 4.5, "reviews": ["Fresh", "Smooth"]},
    2: {"name": "Black coffee", "price": 3.0, "reviews": ["Strong"]},
    3: {"name": "Hot chocolate", "price": 5.25, "reviews": ["Rich", "Sweet", "Too sweet"]},
}
DB_DELAY = float(os.environ.get("EXAMPLE_DB_DELAY", "0.05"))

app = Flask(__name__, root_path=os.path.dirname(os.path.abspath(__file__)))
app.config.update(
    CACHEKIT_URL=os.environ.get("CACHEKIT_URL", "memory://example?policy=adaptive"),
    CACHE_DEFAULT_TIMEOUT=60,
    CACHE_KEY_PREFIX="example:",
)
cache = Cache(app)

try:  # the /metrics page needs prometheus-client (pip install 'cachekit[metrics]')
    from cachekit_flask import metrics_blueprint

    app.register_blueprint(metrics_blueprint())
except ImportError:  # pragma: no cover - optional extra
    pass

#: How many times each slow computation really ran (shown on /stats).
computed: dict[str, int] = {"product": 0, "search": 0, "index": 0, "reviews": 0}


@cache.memoize(timeout=300, tags=["catalog"])
def product_details(product_id: int) -> dict[str, Any] | None:
    """A slow lookup, memoized per ``product_id``."""
    computed["product"] += 1
    time.sleep(DB_DELAY)
    product = PRODUCTS.get(product_id)
    return None if product is None else {"id": product_id, **product}


def count_review_render() -> str:
    """Called from inside the reviews fragment: counts real renders of it."""
    computed["reviews"] += 1
    return ""


@app.get("/")
@cache.cached(timeout=30, tags=["catalog"])
def index() -> str:
    computed["index"] += 1
    products = [product_details(pid) for pid in sorted(PRODUCTS)]
    return render_template("index.html", products=products, rendered_at=time.strftime("%X"))


@app.get("/product/<int:product_id>")
@cache.cached(timeout=60, tags=["catalog"])
def product(product_id: int) -> str:
    details = product_details(product_id)
    if details is None:
        abort(404)
    return render_template("product.html", product=details, count_review_render=count_review_render)


@app.get("/search")
@cache.cached(timeout=30, query_string=True)
def search() -> str:
    computed["search"] += 1
    query = request.args.get("q", "").lower()
    hits = [p for pid, p in sorted(PRODUCTS.items()) if query in p["name"].lower()]
    return render_template("search.html", query=query, hits=hits)


def stats_payload() -> dict[str, Any]:
    stats = cache.get_stats()
    return {
        "provider": stats.provider,
        "items": stats.items,
        "hits": stats.hits,
        "misses": stats.misses,
        "hit_ratio": round(stats.hit_ratio, 3),
        "computed": dict(computed),
    }


@app.get("/stats")
def stats() -> str:
    return render_template("stats.html", stats=stats_payload())


@app.get("/stats.json")
def stats_json() -> Response:
    return jsonify(stats_payload())


@app.post("/invalidate")
def invalidate() -> Response:
    removed = cache.invalidate_tags(["catalog"])
    app.logger.info("invalidated %d catalogue entries", removed)
    return redirect(url_for("stats"))
