"""Benchmarks with rules of their own beyond the shared metrics: one module each, one row here.

A benchmark's module exposes ``extra_metrics(metrics, rows) -> dict`` (the shared metrics and the
prediction rows, scores-only rows included), merged into ``metrics.json`` by
``evaluation/metrics.py`` when that dataset is evaluated. Its reading of rows
(sections, tags) is its adapter in ``data/adapters.py``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from nemo_thinkrm.evaluation.benchmarks import rewardbench, rewardbench2, rm_bench

BENCHMARKS: dict[str, Callable[[dict, Sequence[dict]], dict[str, Any]]] = {
    "rewardbench": rewardbench.extra_metrics,
    "rewardbench2": rewardbench2.extra_metrics,
    "rm_bench": rm_bench.extra_metrics,
}
"""Keyed by the adapter name (``data.name``). JudgeBench has no entry: its pair rule (both orders
judged, +1 / −1 / 0 summed) is reported for every dataset judged in both orders, so it lives in
``genrm/scoring.py``; its categories are its adapter's sections."""
