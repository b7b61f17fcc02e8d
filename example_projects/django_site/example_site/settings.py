"""Settings of the cachekit example site.

Caches run on cachekit's embedded memory provider, or on the server ``CACHEKIT_URL`` names
(``redis://127.0.0.1:6379/0``, ``memcached://127.0.0.1:11211``...). Sessions use Django's
``cached_db`` engine on their own alias, so they survive a cache flush (the SQLite database,
created by ``manage.py serve``, holds them too).
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# An example's key: set DJANGO_SECRET_KEY for anything reachable from other machines.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "cachekit-example-site-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
# manage.py serve --host adds the address it serves on (or '*' for 0.0.0.0), with a note.
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "cachekit_django",
    "example_site",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "example_site.urls"
WSGI_APPLICATION = "example_site.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CACHEKIT_EXAMPLE_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

CACHEKIT_URL = os.environ.get("CACHEKIT_URL", "")
if CACHEKIT_URL:
    # Two caches on one server, kept apart by name (Redis and memcached prefix keys with it),
    # so clearing the page cache leaves the sessions alone.
    CACHES = {
        alias: {
            "BACKEND": "cachekit_django.cache.CacheKitCache",
            "LOCATION": CACHEKIT_URL,
            "OPTIONS": {"name": name},
        }
        for alias, name in (("default", "pages"), ("sessions", "sessions"))
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "cachekit_django.cache.CacheKitCache",
            "LOCATION": "memory://pages?max_entries=10000&policy=adaptive",
        },
        "sessions": {
            "BACKEND": "cachekit_django.cache.CacheKitCache",
            "LOCATION": "memory://sessions?max_entries=10000",
        },
    }
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_CACHE_ALIAS = "sessions"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
