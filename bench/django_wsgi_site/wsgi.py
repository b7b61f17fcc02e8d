"""WSGI entry point: ``gunicorn bench.django_wsgi_site.wsgi`` from the repository root."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.django_wsgi_site.settings")

application = get_wsgi_application()
