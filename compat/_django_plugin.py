"""pytest plugin for Django's own tests (``-p compat._django_plugin``): Django's runner's rules.

Django's ``runtests.py`` creates the test databases once, before any test, and leaves database
access to the test classes' own guards (``SimpleTestCase.databases``); pytest-django blocks any
connection outside a database test, so ``request_finished`` -> ``close_old_connections`` (sent by
the cache middleware and close tests, which are ``SimpleTestCase``) raised there, after a
``TestCase`` had opened the connection. This fixture unblocks it for the session, as Django's
runner has it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True, scope="session")
def _django_runner_database_rules(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock():
        yield
