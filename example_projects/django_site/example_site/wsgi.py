"""WSGI entry point (``gunicorn example_site.wsgi``, run from example_projects/django_site/)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_site.settings")

application = get_wsgi_application()
