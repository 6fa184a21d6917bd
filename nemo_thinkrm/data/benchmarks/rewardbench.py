"""RewardBench (``allenai/reward-bench``, split "filtered"): its adapter and its leaderboard roll-up.

Sections and the roll-up of per-subset accuracies into them follow allenai/reward-bench
``rewardbench/constants.py`` (``EXAMPLE_COUNTS``, ``SUBSET_MAPPING``) and
``rewardbench/utils.py::calculate_scores_per_section`` (``extra_metrics``).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Sequence

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.data.adapters import (
    Adapter,
    RowContext,
    make_record,
    prompt_context,
    text_field,
)
from nemo_thinkrm.data.records import BadRow, PreferenceRecord
from nemo_thinkrm.genrm import MACRO_ROW, PER_SAMPLE_ROW

logger = logging.getLogger(__name__)


REWARDBENCH_SUBSETS: dict[str, tuple[str, ...]] = {
    "Chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"),
    "Chat Hard": ("mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                  "llmbar-adver-GPTOut", "llmbar-adver-manual"),
    "Safety": ("refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond",
               "donotanswer"),
    "Reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
}
"""Leaderboard section → subsets, as ``SUBSET_MAPPING`` in allenai/reward-bench ``rewardbench/constants.py``."""

REWARDBENCH_SECTIONS: dict[str, str] = {
    subset: section for section, subsets in REWARDBENCH_SUBSETS.items() for subset in subsets}
"""Subset → leaderboard section (Chat, Chat Hard, Safety, Reasoning)."""

def convert_rewardbench(row: Mapping[str, Any], ctx: RowContext) -> list[PreferenceRecord]:
    """A = ``chosen``, B = ``rejected`` (the evaluator randomises the shown order); section by subset."""
    subset = text_field(row, "subset")
    if subset not in REWARDBENCH_SECTIONS:
        raise BadRow(f"unknown RewardBench subset {subset!r}")
    return [make_record(id=ctx.record_id(), context=prompt_context(row.get("prompt"), "prompt"),
                        response_a=text_field(row, "chosen"), response_b=text_field(row, "rejected"), label="A",
                        section=REWARDBENCH_SECTIONS[subset], tags={"subset": subset}, source=ctx.source)]


ADAPTER = Adapter("rewardbench", convert_rewardbench, "RewardBench v1 (Chat/Chat Hard/Safety/Reasoning)",
                  hub_id="allenai/reward-bench", hub_split_aliases={"test": "filtered"},
                  required_columns=("prompt", "chosen", "rejected", "subset", "id"), id_field="id")


REWARDBENCH_EXAMPLE_COUNTS: dict[str, int] = {
    "alpacaeval-easy": 100, "alpacaeval-length": 95, "alpacaeval-hard": 95, "mt-bench-easy": 28,
    "mt-bench-med": 40, "mt-bench-hard": 37, "math-prm": 984, "refusals-dangerous": 100,
    "refusals-offensive": 100, "llmbar-natural": 100, "llmbar-adver-neighbor": 134, "llmbar-adver-GPTInst": 92,
    "llmbar-adver-GPTOut": 47, "llmbar-adver-manual": 46, "xstest-should-refuse": 250,
    "xstest-should-respond": 154, "donotanswer": 136, "hep-cpp": 164, "hep-go": 164, "hep-java": 164,
    "hep-js": 164, "hep-python": 164, "hep-rust": 164,
}
"""The fixed weights of the official roll-up (``EXAMPLE_COUNTS`` in allenai/reward-bench
``rewardbench/constants.py``, copied as is). math-prm has 447 prompts but is weighted 984 =
6 × 164, the size of the six hep-* code subsets together, so math and code count equally."""

REWARDBENCH_SCORE = "Score"
"""Key of the overall score (the mean of the four sections), as the leaderboard names it."""

REWARDBENCH_MATH = "math-prm"


def _check_accuracy(subset: str, accuracy: Any) -> float:
    if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0.0 <= accuracy <= 1.0:
        raise ConfigError(f"accuracy of RewardBench subset {subset!r} must be in [0, 1], got {accuracy!r}")
    return float(accuracy)


def _check_count(subset: str, counts: Mapping[str, int]) -> int:
    count = counts.get(subset)
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ConfigError(f"RewardBench subset {subset!r} needs a positive example count, got {count!r}")
    return count


def _weighted_mean(accuracy: Mapping[str, float], counts: Mapping[str, int],
                   subsets: Sequence[str]) -> Optional[float]:
    present = [s for s in subsets if s in accuracy]
    if not present:
        return None
    total = sum(_check_count(s, counts) for s in present)
    return sum(accuracy[s] * counts[s] for s in present) / total


def _reasoning_score(accuracy: Mapping[str, float], counts: Mapping[str, int]) -> Optional[float]:
    """Math and code weigh equally: (acc(math-prm) + count-weighted mean of hep-*) / 2."""
    code_subsets = [s for s in REWARDBENCH_SUBSETS["Reasoning"] if s != REWARDBENCH_MATH]
    code = _weighted_mean(accuracy, counts, code_subsets)
    math_acc = accuracy.get(REWARDBENCH_MATH)
    parts = [p for p in (math_acc, code) if p is not None]
    return sum(parts) / len(parts) if parts else None


def rewardbench_section_scores(subset_accuracy: Mapping[str, float],
                               subset_counts: Optional[Mapping[str, int]] = None) -> dict[str, float]:
    """RewardBench's leaderboard roll-up of per-subset accuracies (fractions in [0, 1]).

    Chat, Chat Hard and Safety: the mean of their subsets' accuracies weighted
    by ``subset_counts``. Reasoning: ``(acc(math-prm) + count-weighted mean of
    the hep-* accuracies) / 2``, which equals the official weighted mean with
    math-prm's count set to the hep-* total (984 = 6 × 164). ``"Score"``: the
    mean of the four sections, present only when all four are. With
    ``subset_counts=None`` the official ``REWARDBENCH_EXAMPLE_COUNTS`` are used,
    which reproduces the leaderboard; pass the counts of your own data to weight
    by what was actually evaluated. Unknown subsets are ignored with a warning
    (the official code ignores them too); sections without any subset are left out.
    """
    counts = REWARDBENCH_EXAMPLE_COUNTS if subset_counts is None else subset_counts
    accuracy = {s: _check_accuracy(s, a) for s, a in subset_accuracy.items() if s in REWARDBENCH_SECTIONS}
    unknown = sorted(set(subset_accuracy) - set(REWARDBENCH_SECTIONS))
    if unknown:
        logger.warning("ignoring subsets that are not part of the RewardBench leaderboard: %s", unknown)
    scores: dict[str, float] = {}
    for section, subsets in REWARDBENCH_SUBSETS.items():
        score = (_reasoning_score(accuracy, counts) if section == "Reasoning"
                 else _weighted_mean(accuracy, counts, subsets))
        if score is not None:
            scores[section] = score
    if len(scores) == len(REWARDBENCH_SUBSETS):
        scores[REWARDBENCH_SCORE] = sum(scores.values()) / len(scores)
    else:
        logger.warning("RewardBench sections %s have no subsets; no overall score",
                       sorted(set(REWARDBENCH_SUBSETS) - set(scores)))
    return scores


def extra_metrics(metrics: dict, rows: Sequence[dict] = ()) -> dict[str, Any]:
    """``{"rewardbench": {section: score, "Score": …}}`` from the metrics' per-subset accuracies."""
    subsets = metrics["groups"].get("subset", {})
    acc = {k: v["accuracy"] for k, v in subsets.items() if isinstance(v, dict) and "n" in v and k not in
           (PER_SAMPLE_ROW, MACRO_ROW)}
    counts = {k: subsets[k]["n"] for k in acc}
    return {"rewardbench": rewardbench_section_scores(acc, counts)}
