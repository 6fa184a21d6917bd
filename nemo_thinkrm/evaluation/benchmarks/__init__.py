"""Benchmarks with rules of their own beyond the shared metrics: one module each, one row here.

A benchmark's module exposes ``extra_metrics(metrics) -> dict``, merged into ``metrics.json``
by ``evaluation/metrics.py`` when that dataset is evaluated. Its reading of rows
(sections, tags) is its adapter in ``data/adapters.py``.
"""

from __future__ import annotations

from typing import Any, Callable

from nemo_thinkrm.evaluation.benchmarks import rewardbench

BENCHMARKS: dict[str, Callable[[dict], dict[str, Any]]] = {
    "rewardbench": rewardbench.extra_metrics,
}
