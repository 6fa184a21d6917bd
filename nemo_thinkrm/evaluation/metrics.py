"""Prediction rows → scored samples → the metrics dict written to ``metrics.json``.

Verdicts are re-parsed from the raw output here (not trusted from the row), so
``thinkrm score`` applies exactly the rules of this version to any saved run.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.registry import BENCHMARK_METRICS
from nemo_thinkrm.data.records import SCORE_TAGS, SCORES_ONLY
from nemo_thinkrm.genrm import TIE, ScoredSample, parse_verdict, score_sample, summarize


def parse_label(value: Any, mode: str) -> Any:
    """Ground-truth label from a row: "A"/"B", or an int −3..3 (no 0) for multiclass."""
    if isinstance(value, str) and value.strip().upper() in ("A", "B"):
        return value.strip().upper()
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"label {value!r} is neither A/B nor an integer in -3..3") from None
    if n == 0 or not -3 <= n <= 3:
        raise ConfigError(f"label {value!r} must be in -3..3 and not 0")
    return n


def is_score_tie(row: dict) -> bool:
    """A reward model's row whose two scores are equal (``evaluation/reward_eval.py``)."""
    scores = row.get("scores")
    return bool(scores) and not row.get("error") and scores.get("A") is not None and scores["A"] == scores.get("B")


def samples_from_rows(rows: Iterable[dict], mode: Optional[str] = None) -> list[ScoredSample]:
    out = []
    for r in rows:
        row_mode = mode or r.get("mode", "binary")
        verdict = TIE if is_score_tie(r) else parse_verdict(r.get("output") or "", row_mode)
        tokens = r.get("output_tokens")
        out.append(score_sample(
            r.get("example_id", r.get("id")), verdict, parse_label(r["label"], row_mode),
            section=r.get("section") or "all", seed=int(r.get("seed", 0)),
            output_tokens=int(tokens) if tokens is not None else None,
            swapped=bool(r.get("swapped", False)), tags=r.get("tags") or {}))
    return out


def compute_metrics(rows: Sequence[dict], mode: Optional[str] = None, dataset: Optional[str] = None,
                    extra: Optional[dict] = None) -> dict[str, Any]:
    """Every metric the report shows (``genrm.summarize``), a benchmark's own roll-up and run
    bookkeeping (failed requests, over-length rows)."""
    all_rows = list(rows)
    # scores-only rows (RewardBench 2's Ties comparisons) have no pairwise label: the benchmark reads them
    rows = [r for r in all_rows if not (r.get("tags") or {}).get(SCORES_ONLY)]
    if not rows:
        raise ConfigError("no predictions to score")
    failed = [r for r in rows if r.get("error")]
    samples = samples_from_rows(rows, mode)
    group_keys = ["section"] + sorted({k for r in rows for k in (r.get("tags") or {})} - SCORE_TAGS)
    metrics = summarize(samples, group_keys=group_keys)
    metrics["failed_requests"] = len(failed)
    metrics["ties"] = sum(1 for s in samples if s.verdict.tie)
    if dataset in BENCHMARK_METRICS:
        metrics.update(BENCHMARK_METRICS.get(dataset)(metrics, all_rows))
    metrics.update(extra or {})
    return metrics
