"""The ``cachekit_django`` app: registers the system checks and the settings-declared tag
invalidation when Django is ready."""

from __future__ import annotations

from django.apps import AppConfig


class CachekitDjangoConfig(AppConfig):
    name = "cachekit_django"
    verbose_name = "cachekit"

    def ready(self) -> None:
        from .checks import register_checks
        from .signals import connect_from_settings

        register_checks()
        connect_from_settings()
