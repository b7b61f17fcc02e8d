"""A second real process for the tiered cache's tests: a TieredCache driven over stdin/stdout.

Run as ``python tests/tiered_peer.py REDIS_URL PREFIX``. It prints ``ready`` once its
invalidation subscriber is confirmed, then executes one command per stdin line and answers one
line (``ok <result>`` or ``error <message>``)::

    set KEY VALUE     (VALUE stored as a str)
    get KEY
    delete KEY
    tags TAG          (invalidate_tags)
    settag KEY VALUE TAG
    quit
"""

from __future__ import annotations

import sys

from cachekit import MISSING, create_cache
from cachekit.providers.tiered import TieredCache


def main(url: str, prefix: str) -> int:
    cache = create_cache({"url": "tiered://", "l2": {"url": url, "prefix": prefix}})
    assert isinstance(cache, TieredCache)
    try:
        if not cache.start(timeout=10):
            print("error subscriber not connected", flush=True)
            return 1
        print("ready", flush=True)
        for line in sys.stdin:
            command, *args = line.split()
            try:
                if command == "quit":
                    print("ok bye", flush=True)
                    return 0
                if command == "set":
                    cache.set(args[0], args[1])
                    result: object = None
                elif command == "settag":
                    cache.set(args[0], args[1], tags=[args[2]])
                    result = None
                elif command == "get":
                    value = cache.get(args[0], MISSING)
                    result = "<missing>" if value is MISSING else value
                elif command == "delete":
                    result = cache.delete(args[0])
                elif command == "tags":
                    result = cache.invalidate_tags([args[0]])
                else:
                    raise ValueError(f"unknown command {command!r}")
            except Exception as exc:  # report, keep serving
                print(f"error {type(exc).__name__}: {exc}", flush=True)
            else:
                print(f"ok {result}", flush=True)
        return 0
    finally:
        cache.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
