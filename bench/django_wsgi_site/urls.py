"""``/page/``: a ``cache_page`` view; ``X-Rendered`` tells which render a response came from."""

from __future__ import annotations

import os
import time

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.cache import cache_page

ROWS = [{"sku": f"SKU-{n:04d}", "name": f"Product {n}", "price": n * 1.5} for n in range(100)]


@cache_page(3600)
def page(request: HttpRequest) -> HttpResponse:
    response = render(request, "page.html", {"rows": ROWS})
    # Same value on every hit of one cached copy: the bench checks pages come from the cache.
    response["X-Rendered"] = f"{os.getpid()}-{time.monotonic_ns()}"
    return response


urlpatterns = [path("page/", page)]
