"""Flask-Caching 2.5's ``tests/`` against ``cachekit_flask.Cache``.

The switch the docs promise is one import (``from cachekit_flask import Cache``), and that is
the main modification: every ``from flask_caching import Cache`` (and the ``cache`` fixture's
``fsc.Cache``) becomes cachekit_flask's. One more follows the docs: the ``clock`` fixture,
which fakes time by patching cachelib's modules, also hands its fake clock to cachekit's memory
and file providers through their public ``clock`` option (``CACHEKIT_OPTIONS``), and the
``cache`` fixture is built after it when a test uses both.

Everything else the tests import from ``flask_caching`` (the signals, ``CachedResponse``,
``make_template_fragment_key``, ``function_namespace``, the backend classes) stays
Flask-Caching's, as in an application that changed only its imports of ``Cache``. The tests'
fixed server ports (Redis 6360, memcached 11212) become those of the servers started here;
their fixtures see a server listening and start none.

``tests/test_backend_cache.py`` is not run: it tests ``flask_caching.backends``' classes
directly (Flask-Caching's wrappers of cachelib), which cachekit_flask neither uses nor replaces.
``--baseline`` runs the unmodified tests (with Flask-Caching's ``Cache``) on the same servers.
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

VERSION = "2.5.1"

#: Test files (under tests/) not run, and why.
NOT_RUN = {
    "test_backend_cache.py": "tests flask_caching.backends' cachelib wrappers directly",
}

#: The files that say ``from flask_caching import Cache``.
_CACHE_IMPORTERS = (
    "test_basic_app.py",
    "test_cache.py",
    "test_cachelib.py",
    "test_hash_method.py",
    "test_init.py",
    "test_memoize.py",
    "test_serializer.py",
    "test_signals.py",
    "test_subclassing.py",
)

PATCHES: list[Patch] = [
    *(
        Patch(
            f"tests/{name}",
            "from flask_caching import Cache\n",
            "from cachekit_flask import Cache\n",
            1,
            "the drop-in import",
        )
        for name in _CACHE_IMPORTERS
    ),
    Patch(
        "tests/conftest.py",
        "import flask_caching as fsc\n",
        "import flask_caching as fsc\n\nimport cachekit_flask\n",
        1,
        "the cache fixture's Cache is cachekit_flask's",
    ),
    Patch(
        "tests/conftest.py",
        "def cache(app):\n    return fsc.Cache(app)\n",
        "def cache(app, request):\n"
        '    if "clock" in request.fixturenames:  # compat: the fake clock first (see clock)\n'
        '        request.getfixturevalue("clock")\n'
        "    return cachekit_flask.Cache(app)\n",
        1,
        "the cache fixture's Cache is cachekit_flask's, built after the test's fake clock",
    ),
    Patch(
        "tests/conftest.py",
        "def clock(monkeypatch):\n",
        "def clock(monkeypatch, app):\n",
        1,
        "the fake clock reaches cachekit's provider through the app's config",
    ),
    Patch(
        "tests/conftest.py",
        '    monkeypatch.setattr(cachelib.file, "time", fake)\n',
        '    monkeypatch.setattr(cachelib.file, "time", fake)\n'
        "    # compat: cachekit's memory and file providers take their clock as an option.\n"
        '    app.config["CACHEKIT_OPTIONS"] = {"clock": fake}\n',
        1,
        "the fake clock reaches cachekit's provider through the app's config",
    ),
]

#: Files naming the fixed ports, and how often: (redis 6360, memcached 11212).
_PORT_USES = {
    "conftest.py": (3, 3),
    "test_basic_app.py": (5, 0),
    "test_cache.py": (1, 0),
    "test_init.py": (1, 3),
}


def _port_patches(redis_port: int, memcached_port: int) -> list[Patch]:
    patches: list[Patch] = []
    for name, (redis_uses, memcached_uses) in _PORT_USES.items():
        for old, new, count in (
            ("6360", redis_port, redis_uses),
            ("11212", memcached_port, memcached_uses),
        ):
            if count:
                patches.append(
                    Patch(f"tests/{name}", rf"\b{old}\b", str(new), count, "servers", regex=True)
                )
    return patches


PYTEST_INI = """\
[pytest]
testpaths = tests
timeout = 300
"""


def run(pytest_args: list[str], *, baseline: bool = False) -> Run:
    check_installed("Flask-Caching", VERSION)
    sdist = fetch_sdist(f"flask-caching=={VERSION}", f"flask_caching-{VERSION}")
    workdir = CACHE_DIR / "work" / ("flask-baseline" if baseline else "flask")
    extract(sdist, {f"flask_caching-{VERSION}/tests/": "tests/"}, workdir)
    with RedisServer() as redis, MemcachedServer() as memcached:
        patches = _port_patches(redis.port, memcached.port)
        if not baseline:
            patches = [*PATCHES, *patches]
        (workdir / "patches.diff").write_text(apply_patches(workdir, patches), encoding="utf-8")
        ignore = [f"--ignore=tests/{name}" for name in NOT_RUN]
        args = ["-p", "no:django", *ignore, "tests", *pytest_args]
        return run_pytest(workdir, PYTEST_INI, args, env={}, log_name="pytest.log")
