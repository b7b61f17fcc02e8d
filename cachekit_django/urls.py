"""``path("", include("cachekit_django.urls"))`` adds ``/metrics`` (Prometheus) for all aliases.

Mount it under another prefix to move it (``path("ops/", include(...))`` serves
``/ops/metrics``); see :mod:`cachekit_django.views` for protecting it.
"""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "cachekit"

urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
]
