"""Django 5.2's ``tests/cache`` against cachekit_django's named backends.

The tests name their backends by dotted path, in class and method decorators
(``override_settings(CACHES=caches_setting_for_tests(BACKEND=...))``) and in the two helper
backends that subclass ``LocMemCache``; the Redis and memcached classes take theirs from
``settings.CACHES``, found by ``BACKEND``. The patches below swap each of Django's paths for the
cachekit backend that replaces it, everywhere in the files (so the middleware, ``cache_page``,
i18n and template tests, which use ``LocMemCache`` as their cache, run on ``MemoryCache`` too):

=========================================================  =========================================
Django                                                     cachekit
=========================================================  =========================================
``django.core.cache.backends.locmem.LocMemCache``          ``cachekit_django.cache.MemoryCache``
``django.core.cache.backends.filebased.FileBasedCache``    ``cachekit_django.cache.FileCache``
``django.core.cache.backends.redis.RedisCache``            ``cachekit_django.cache.RedisCache``
``django.core.cache.backends.memcached.PyMemcacheCache``   ``cachekit_django.cache.MemcachedCache``
=========================================================  =========================================

So ``cache/tests.py::LocMemCacheTests::test_add`` is Django's ``LocMemCacheTests.test_add`` run
on ``MemoryCache``. ``DummyCache``, ``DatabaseCache`` and ``PyLibMCCache`` (not configured:
pylibmc is not installed) stay Django's. ``--baseline`` runs the unmodified tests on Django's
own backends and the same servers, to check the harness itself (every test should pass).
"""

from __future__ import annotations

from cachekit.testing.servers import MemcachedServer, RedisServer

from ._common import (
    CACHE_DIR,
    Patch,
    Run,
    apply_patches,
    check_installed,
    extract,
    fetch_sdist,
    run_pytest,
)

VERSION = "5.2.19"

_BACKENDS = {
    "django.core.cache.backends.locmem.LocMemCache": ("cachekit_django.cache.MemoryCache", 13),
    "django.core.cache.backends.filebased.FileBasedCache": ("cachekit_django.cache.FileCache", 1),
    "django.core.cache.backends.redis.RedisCache": ("cachekit_django.cache.RedisCache", 1),
    "django.core.cache.backends.memcached.PyMemcacheCache": (
        "cachekit_django.cache.MemcachedCache",
        1,
    ),
}

PATCHES: list[Patch] = [
    *(
        Patch("cache/tests.py", f'"{theirs}"', f'"{ours}"', count, f"{theirs} -> ours")
        for theirs, (ours, count) in _BACKENDS.items()
    ),
    Patch(
        "cache/tests.py",
        """
        # LocMem requires a hack to make the other caches
        # share a data store with the 'normal' cache.
        caches["prefix"]._cache = cache._cache
        caches["prefix"]._expire_info = cache._expire_info

        caches["v2"]._cache = cache._cache
        caches["v2"]._expire_info = cache._expire_info

        caches["custom_key"]._cache = cache._cache
        caches["custom_key"]._expire_info = cache._expire_info

        caches["custom_key2"]._cache = cache._cache
        caches["custom_key2"]._expire_info = cache._expire_info
""",
        """
        # compat: MemoryCache backends with one LOCATION and the same OPTIONS share a store
        # (LocMemCache's with one name do too), so the aliases already see its data.
""",
        1,
        "LocMemCacheTests.setUp assigns LocMemCache's private dicts across aliases",
    ),
    *(
        Patch(
            f"cache/{helper}",
            "from django.core.cache.backends.locmem import LocMemCache\n",
            "from cachekit_django.cache import MemoryCache as LocMemCache\n",
            1,
            "the helper backend subclasses ours",
        )
        for helper in ("closeable_cache.py", "liberal_backend.py")
    ),
]

PYTEST_INI = """\
[pytest]
DJANGO_SETTINGS_MODULE = compat.django_settings
django_find_project = false
python_files = tests.py tests_*.py
timeout = 300
"""


def run(pytest_args: list[str], *, baseline: bool = False) -> Run:
    check_installed("Django", VERSION)
    sdist = fetch_sdist(f"django=={VERSION}", f"django-{VERSION}")
    workdir = CACHE_DIR / "work" / ("django-baseline" if baseline else "django")
    extract(sdist, {f"django-{VERSION}/tests/cache/": "cache/"}, workdir)
    if not baseline:
        (workdir / "patches.diff").write_text(apply_patches(workdir, PATCHES), encoding="utf-8")
    with RedisServer() as redis, MemcachedServer() as memcached:
        env = {
            "DJANGO_SETTINGS_MODULE": "compat.django_settings",  # over one set in the shell
            "COMPAT_DJANGO_BACKENDS": "django" if baseline else "cachekit",
            # No database in the URL: test_redis_pool_options gives OPTIONS={"db": 5}, which
            # both backends let the URL override (redis-py's from_url), as Django's CI has it.
            "COMPAT_REDIS_URL": f"redis://{redis.host}:{redis.port}",
            "COMPAT_MEMCACHED_LOCATION": f"{memcached.host}:{memcached.port}",
        }
        args = ["-p", "compat._django_plugin", "cache", *pytest_args]
        return run_pytest(workdir, PYTEST_INI, args, env, log_name="pytest.log")
