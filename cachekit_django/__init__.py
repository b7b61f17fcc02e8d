"""Django adapter for cachekit: ``CACHES`` backends over every cachekit provider.

Backends live in :mod:`cachekit_django.cache` (``CacheKitCache``, ``MemoryCache``,
``RedisCache``, ``MemcachedCache``, ``RedisClusterCache``, ``TieredCache``, ``FileCache``); add
``"cachekit_django"`` to ``INSTALLED_APPS`` for the start-up system checks
(:mod:`cachekit_django.checks`) and settings-declared tag invalidation on model changes
(:mod:`cachekit_django.signals`). See ``docs/django.md``.

Nothing is imported here, so listing the app never imports Django's cache machinery early.
"""
