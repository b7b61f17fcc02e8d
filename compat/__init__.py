"""Drop-in compatibility job: the upstream libraries' own test suites against cachekit's adapters.

``python -m compat django|flask|all`` downloads the pinned sdist of Django (its ``tests/cache``)
or Flask-Caching (its ``tests/``), applies a short list of scripted substitutions that point the
tests at ``cachekit_django`` / ``cachekit_flask`` (each must match exactly as often as declared),
starts ``redis-server`` and ``memcached`` with :mod:`cachekit.testing.servers`, runs pytest, and
compares the outcome with ``compat/expected.toml``: an unlisted failure fails the job, and so
does a listed test that passes (or no longer exists). See ``docs/compat.md``.
"""
