"""Django settings for Django's own ``tests/cache`` (``python -m compat django``).

Django's ``tests/runtests.py`` with ``tests/test_sqlite.py``, reduced to what the cache tests
read, plus the ``CACHES`` its Redis and memcached test classes look for (``tests/cache/tests.py``
keys them by ``BACKEND``). ``COMPAT_DJANGO_BACKENDS`` chooses the backends: ``cachekit``
(``cachekit_django.cache.*``, as the patched tests name them) or ``django`` (the unmodified
tests' baseline). The servers' addresses come from the environment, set by ``compat.django``.
"""

from __future__ import annotations

import os

_BACKENDS = os.environ.get("COMPAT_DJANGO_BACKENDS", "cachekit")
_REDIS = os.environ["COMPAT_REDIS_URL"]  # redis://127.0.0.1:PORT
_MEMCACHED = os.environ["COMPAT_MEMCACHED_LOCATION"]  # 127.0.0.1:PORT

if _BACKENDS == "cachekit":
    CACHES = {
        "default": {"BACKEND": "cachekit_django.cache.MemoryCache"},
        "redis": {"BACKEND": "cachekit_django.cache.RedisCache", "LOCATION": _REDIS},
        "memcached": {"BACKEND": "cachekit_django.cache.MemcachedCache", "LOCATION": _MEMCACHED},
    }
elif _BACKENDS == "django":
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _REDIS},
        "memcached": {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": _MEMCACHED,
        },
    }
else:
    raise ValueError(f"COMPAT_DJANGO_BACKENDS={_BACKENDS!r}: expected 'cachekit' or 'django'")

# tests/test_sqlite.py
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3"},
    "other": {"ENGINE": "django.db.backends.sqlite3"},
}
SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False

# tests/runtests.py (setup_collect_tests), with the test app itself installed.
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sites",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin.apps.SimpleAdminConfig",
    "django.contrib.staticfiles",
    "cache",
]
ROOT_URLCONF = ""
STATIC_URL = "static/"
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
            ],
        },
    }
]
LANGUAGE_CODE = "en"
SITE_ID = 1
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
MIGRATION_MODULES = {"auth": None, "contenttypes": None, "sessions": None}
