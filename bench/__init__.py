"""Benchmarks of cachekit (run from the repository root, e.g. ``python -m bench.hit_ratio``)."""
