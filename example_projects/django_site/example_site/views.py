"""The example's pages: each shows one way of caching with cachekit's Django backends."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import cache_page

from .computations import PrimeCount, cache_key, count_primes

PRODUCTS = [
    {"sku": f"SKU-{n:04d}", "name": f"Product {n}", "price": f"{9.99 + n * 1.5:.2f}"}
    for n in range(1, 25)
]


def alias_stats() -> list[dict[str, Any]]:
    """Live counters of every cache alias (what the home page's table shows)."""
    rows = []
    for alias in settings.CACHES:
        stats = caches[alias].get_stats()
        rows.append(
            {
                "alias": alias,
                "provider": stats.provider,
                "hits": stats.hits,
                "misses": stats.misses,
                "hit_ratio": f"{stats.hit_ratio:.0%}",
                "items": stats.items,
            }
        )
    return rows


def home(request: HttpRequest) -> HttpResponse:
    """``get_or_set`` of a slow computation, a session counter, a cached fragment, live stats."""
    request.session["visits"] = request.session.get("visits", 0) + 1
    computed: list[bool] = []

    def compute() -> PrimeCount:
        computed.append(True)  # runs only on a miss
        return count_primes()

    primes = caches["default"].get_or_set(cache_key(), compute, timeout=300)
    context = {
        "primes": primes,
        "primes_hit": not computed,
        "visits": request.session["visits"],
        "stats": alias_stats(),
        "backend": settings.CACHEKIT_URL or "memory (embedded)",
        "now": timezone.now(),
    }
    return render(request, "example_site/home.html", context)


@cache_page(60)
def products(request: HttpRequest) -> HttpResponse:
    """A whole page cached for 60 s: "rendered at" stays put until it expires."""
    return render(
        request, "example_site/products.html", {"products": PRODUCTS, "now": timezone.now()}
    )
