"""Benchmarks with rules of their own beyond the shared metrics: one module each.

A benchmark's module exposes ``extra_metrics(metrics, rows) -> dict`` (the shared metrics and the
prediction rows, scores-only rows included), registered by adapter name (``data.name``) in
``config/registry.py: BENCHMARK_METRICS`` and merged into ``metrics.json`` by
``evaluation/metrics.py`` when that dataset is evaluated. JudgeBench has no entry: its pair rule
(both orders judged, +1 / −1 / 0 summed) is reported for every dataset judged in both orders, so
it lives in ``genrm/scoring.py``; its categories are its adapter's sections.
"""
