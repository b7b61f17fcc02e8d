"""Settings of the gunicorn bench's one-page project (``bench/django_wsgi.py`` starts it).

The ``default`` cache comes from ``$BENCH_CACHE`` (a JSON ``CACHES`` entry), so the same
project runs with each backend. Nothing else: no database, no sessions, no middleware, so a
request costs Django's handler, the ``cache_page`` lookups and the response.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SECRET_KEY = "cachekit-bench-not-secret"  # a local benchmark's key
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.django_wsgi_site.urls"
DATABASES: dict[str, object] = {}
USE_TZ = True
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [str(Path(__file__).resolve().parent)],
    }
]
CACHES = {"default": json.loads(os.environ["BENCH_CACHE"])}
LOGGING_CONFIG = None
