"""A reward model as the judge of ``thinkrm eval`` / ``robustness`` (``generation.backend=reward_model``).

No generation: both responses of a pair are scored (``generation/reward_scorer.py``) and the higher
one wins. Each pair becomes one prediction row in the schema every other engine writes, with the
verdict as text (``<answer>A</answer>``), so metrics, benchmark roll-ups (RM-Bench difficulty,
RewardBench sections, RewardBench 2 best-of-4), reports, ``thinkrm score`` and resume apply
unchanged; the two scores are kept in the row (``scores``).

A reward model sees no shown order, so ``swap`` and ``voting.m`` do not apply: one row per pair,
in the data's own A/B order. An exact tie prefers neither response and counts 0.5 (strict and
flexible; ``genrm.verdict.TIE``, counted in ``metrics["ties"]``, not as invalid); the metrics read it
from the saved ``scores``, so ``thinkrm score`` re-scores it alike. A pair that could not be scored
(longer than the model's context) has ``error`` set and is counted as a failed request.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from nemo_thinkrm.evaluation import predictions as preds
from nemo_thinkrm.evaluation.prompts import request_id
from nemo_thinkrm.generation.reward_scorer import RewardScorer, ScoreOutput, build_scorer, requests_for_pair

logger = logging.getLogger("nemo_thinkrm.eval")
MODE = "binary"


def pair_verdict(score_a: float, score_b: float) -> str:
    """The verdict text of two scores: the higher one wins; an exact tie writes no text (the metrics
    read the tie from the scores)."""
    if score_a == score_b:
        return ""
    return "<answer>A</answer>" if score_a > score_b else "<answer>B</answer>"


def prediction_row(rec: Any, a: ScoreOutput, b: ScoreOutput) -> dict:
    from nemo_thinkrm.genrm import parse_verdict

    error = a.error or b.error
    text = "" if error else pair_verdict(a.score, b.score)
    v = parse_verdict(text, MODE)
    prompt_id = f"{rec.id}:o0"
    return {"request_id": request_id(prompt_id, 0), "prompt_id": prompt_id, "example_id": rec.id, "seed": 0,
            "swapped": False, "label": rec.label, "mode": MODE, "section": rec.section, "tags": dict(rec.tags),
            "output": text, "output_tokens": None, "finish_reason": "error" if error else "score", "error": error,
            "scores": {"A": a.score, "B": b.score}, "tokens": {"A": a.tokens, "B": b.tokens},
            "verdict": {"label": v.label, "strength": v.strength, "valid": v.valid}}


def score_missing(records: Sequence[Any], scorer_factory, pred_path: Path, chunk_size: int) -> list[dict]:
    """Score every record not yet in ``pred_path``; rows are appended chunk by chunk (resume)."""
    rows = preds.read_rows(pred_path)
    done = preds.completed_ids(rows)
    todo = [r for r in records if request_id(f"{r.id}:o0", 0) not in done]
    if todo:
        logger.info("%d pairs to score with the reward model (%d already in %s)", len(todo),
                    len(records) - len(todo), pred_path.name)
        scorer: Optional[RewardScorer] = scorer_factory()
        t0, n = time.time(), 0
        try:
            for start in range(0, len(todo), chunk_size):
                chunk = todo[start:start + chunk_size]
                reqs = [q for r in chunk for q in requests_for_pair(r.id, r.context, r.response_a, r.response_b)]
                outs = scorer.score(reqs, progress=True)
                new = [prediction_row(r, outs[2 * k], outs[2 * k + 1]) for k, r in enumerate(chunk)]
                preds.append_rows(pred_path, new)
                n += len(new)
                rate = n / max(time.time() - t0, 1e-9)
                logger.info("%d/%d pairs scored, %.1f pairs/s, ETA %.0f s", n, len(todo), rate,
                            (len(todo) - n) / rate)
        finally:
            scorer.close()
        rows = preds.read_rows(pred_path)
    wanted = {request_id(f"{r.id}:o0", 0) for r in records}
    return [r for r in preds.latest_per_request(rows) if r["request_id"] in wanted]


def scorer_factory(judge_path: Optional[str], batch_size: int, max_length: Optional[int]):
    return lambda: build_scorer(judge_path, batch_size=batch_size, max_length=max_length)


def over_length_ids(rows: Sequence[dict]) -> list[str]:
    return sorted({r["example_id"] for r in rows if (r.get("error") or "").startswith("over-length")})
