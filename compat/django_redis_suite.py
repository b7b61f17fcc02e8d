"""django-redis 7.0's ``tests/`` against ``cachekit_django.cache.RedisCache``.

django-redis's docs make the switch one line: ``BACKEND``. That is the whole modification here:
in each settings module run (``tests/settings/<variant>.py``), every
``"BACKEND": "django_redis.cache.RedisCache"`` becomes ``"cachekit_django.cache.RedisCache"``,
``LOCATION``, ``OPTIONS`` (``CLIENT_CLASS``, ``SERIALIZER``, ``COMPRESSOR``...) and
``KEY_PREFIX`` kept as written, so ``cachekit_django.redis_options`` reads django-redis's
``OPTIONS``. The tests themselves are not touched: what they import from ``django_redis``
(``ShardClient``, ``herd``, the serializers, ``@patch("django_redis.cache.RedisCache.client")``)
stays django-redis's, as in an application that changed only its settings.

Two more substitutions, in the baseline too: the fixed server port 6379 becomes that of the
``redis-server`` started here (the ``doesnotexist`` alias's 56379 becomes a port nothing listens
on), and ``tests/conftest.py``'s list of settings variants is cut to those run. Each variant
runs in its own pytest process: ``django.conf.settings`` is configured once per process, so
the ``cache`` fixture's ``DJANGO_SETTINGS_MODULE = settings.<variant>`` only takes effect
there (upstream relies on pytest-xdist giving each variant a worker).

Variants: :data:`DEFAULT_VARIANTS` by default (about 25 s each; the default settings and the
JSON serializer, what CI runs), all of :data:`VARIANTS` with ``COMPAT_DJANGO_REDIS_VARIANTS=all``,
or a list (``COMPAT_DJANGO_REDIS_VARIANTS=sqlite,sqlite_zlib``). Only the listed tests of the
variants run are checked (:func:`narrow`), strictly: one that passes or does not run fails.
The sentinel, sharding and unix-socket variants need servers (or a ``ShardClient``) this job
does not provide; cachekit refuses ``ShardClient``, ``SENTINELS`` and the lz4/gzip compressors
(E001), so those variants cannot build a cachekit backend at all.

Not run: files and classes that test ``django_redis``'s own modules directly, without a cache
backend (:data:`NOT_RUN`). ``--baseline`` runs the unmodified tests on django-redis's backend.
Needs ``pytest-xdist`` (imported by upstream's ``conftest.py``) and ``pytest-mock``.
"""

from __future__ import annotations

import json
import os

from cachekit.testing.servers import RedisServer, free_port

from ._common import (
    CACHE_DIR,
    CompatError,
    Patch,
    Run,
    apply_patches,
    check_installed,
    extract,
    fetch_sdist,
    run_pytest,
)

VERSION = "7.0.0"

#: The settings variants run (``tests/settings/<name>.py``) -> how often each names the ports
#: 6379 and 56379. The others are in NOT_RUN_VARIANTS.
VARIANTS = {
    "sqlite": (5, 1),
    "sqlite_json": (5, 1),
    "sqlite_zlib": (5, 1),
    "sqlite_msgpack": (5, 1),
    "sqlite_zstd": (5, 1),
    "sqlite_herd": (4, 1),
}
#: What runs unless COMPAT_DJANGO_REDIS_VARIANTS says otherwise: the default settings and one
#: serializer variant, to keep CI's run near 50 s (the others fail the same tests today).
DEFAULT_VARIANTS = ("sqlite", "sqlite_json")
#: Every variant upstream's conftest parametrizes, and why the others are not run here.
NOT_RUN_VARIANTS = {
    "sqlite_sentinel": "needs a Sentinel on 26379 (cachekit refuses SENTINELS: E001)",
    "sqlite_sentinel_opts": "needs a Sentinel on 26379 (cachekit refuses SENTINELS: E001)",
    "sqlite_sharding": "CLIENT_CLASS ShardClient (cachekit refuses it: E001)",
    "sqlite_usock": "needs redis-server on a unix socket",
    "sqlite_lz4": "lz4 compressor (cachekit refuses it: E001; lz4 not installed)",
    "sqlite_gzip": "gzip compressor (cachekit refuses it: E001)",
}

#: Test files (under tests/) and classes not run, and why.
NOT_RUN = {
    "tests/test_connection_factory.py": "tests django_redis.pool directly (no cache backend)",
    "tests/test_connection_params.py": "tests django_redis.pool directly (no cache backend)",
    "tests/test_hashring.py": "tests django_redis.hash_ring directly (no cache backend)",
    "tests/test_serializers.py": "tests django_redis.serializers directly (no cache backend)",
    "tests/test_client.py::TestDefaultClient": "builds django_redis.client.DefaultClient directly",
    "tests/test_client.py::TestShardClient": "builds django_redis.client.ShardClient directly",
}

_BACKEND = '"BACKEND": "django_redis.cache.RedisCache"'
_OURS = '"BACKEND": "cachekit_django.cache.RedisCache"'


def narrow(expected: dict[str, str]) -> dict[str, str]:
    """The entries of ``expected`` that this run checks: those of the variants run (an id ends
    in ``[variant]``), and those of tests without the ``cache`` fixture, which run in each."""
    wanted = set(_variants())
    kept = {}
    for test_id, reason in expected.items():
        variant = test_id[test_id.rfind("[") + 1 : -1] if test_id.endswith("]") else None
        if variant is None or variant in wanted:
            kept[test_id] = reason
    return kept


def _variants() -> list[str]:
    given = os.environ.get("COMPAT_DJANGO_REDIS_VARIANTS", "").strip()
    if given == "all":
        return list(VARIANTS)
    names = [v.strip() for v in given.split(",") if v.strip()] if given else [*DEFAULT_VARIANTS]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise CompatError(
            f"COMPAT_DJANGO_REDIS_VARIANTS: {unknown or 'none'} not among all, "
            f"{', '.join(VARIANTS)}"
        )
    return names


def _patches(
    variants: list[str], redis_port: int, dead_port: int, *, baseline: bool
) -> list[Patch]:
    patches = [
        Patch(
            "tests/conftest.py",
            '        metafunc.parametrize("cache_settings", settings)\n',
            "        # compat: one variant per pytest process (see compat/django_redis_suite.py)\n"
            '        wanted = environ["COMPAT_DJANGO_REDIS_VARIANT"]\n'
            "        assert wanted in settings, wanted\n"
            '        metafunc.parametrize("cache_settings", [wanted])\n',
            1,
            "run one settings variant per process",
        ),
    ]
    for variant in variants:
        path = f"tests/settings/{variant}.py"
        patches += [
            Patch(
                path, r"\b6379\b", str(redis_port), VARIANTS[variant][0], "the server", regex=True
            ),
            Patch(
                path, r"\b56379\b", str(dead_port), VARIANTS[variant][1], "no server", regex=True
            ),
        ]
        if not baseline:
            patches.append(Patch(path, _BACKEND, _OURS, 4, "the drop-in BACKEND line"))
    return patches


PYTEST_INI = """\
[pytest]
testpaths = tests
timeout = 300
"""


def run(pytest_args: list[str], *, baseline: bool = False) -> Run:
    check_installed("django-redis", VERSION)
    sdist = fetch_sdist(f"django-redis=={VERSION}", f"django_redis-{VERSION}")
    workdir = CACHE_DIR / "work" / ("django-redis-baseline" if baseline else "django-redis")
    extract(sdist, {f"django_redis-{VERSION}/tests/": "tests/"}, workdir)
    variants = _variants()
    merged: Run | None = None
    with RedisServer() as redis:
        dead_port = free_port()  # nothing listens there: the "doesnotexist" alias
        patches = _patches(variants, redis.port, dead_port, baseline=baseline)
        (workdir / "patches.diff").write_text(apply_patches(workdir, patches), encoding="utf-8")
        ignore = [f"--ignore={p}" if "::" not in p else f"--deselect={p}" for p in NOT_RUN]
        for variant in variants:
            env = {
                "COMPAT_DJANGO_REDIS_VARIANT": variant,
                # Tests without the cache fixture read settings too (test_cache_options.py).
                "DJANGO_SETTINGS_MODULE": f"settings.{variant}",
            }
            args = ["-p", "no:django", *ignore, "tests", *pytest_args]
            run = run_pytest(workdir, PYTEST_INI, args, env, log_name=f"pytest-{variant}.log")
            merged = run if merged is None else _merge(merged, run)
    assert merged is not None
    # Each run's results.json holds its variant only; keep the union beside them.
    (workdir / "results-all.json").write_text(
        json.dumps(
            {"outcomes": merged.outcomes, "messages": merged.messages}, indent=1, sort_keys=True
        ),
        encoding="utf-8",
    )
    return merged


_RANK = {"passed": 0, "skipped": 1, "failed": 2}


def _merge(into: Run, run: Run) -> Run:
    """Both runs' outcomes. Tests without the ``cache`` fixture (``test_cache_options.py``'s
    ``test_get_django_omit_exceptions*``) run once per variant under one id: the worst wins."""
    for test_id, outcome in run.outcomes.items():
        if _RANK[outcome] > _RANK[into.outcomes.get(test_id, "passed")] or (
            test_id not in into.outcomes
        ):
            into.outcomes[test_id] = outcome
        if test_id in run.messages:
            into.messages.setdefault(test_id, run.messages[test_id])
    into.returncode = max(into.returncode, run.returncode)
    into.seconds += run.seconds
    return into
