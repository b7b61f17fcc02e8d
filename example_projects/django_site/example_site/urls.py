"""URLs: the home page, a ``cache_page`` view, the admin (with cachekit's stats page), /metrics."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("products/", views.products, name="products"),
    path("admin/", admin.site.urls),
    path("", include("cachekit_django.urls")),
]
