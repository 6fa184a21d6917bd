"""Per-sample scoring, rewards, voting@m, order-swap metrics and roll-ups.

Everything here is a small pure function over ``Verdict`` / ``ScoredSample``
records, so the offline evaluator and the RL reward share one definition of
"correct" (Think-RM's rules):

* accuracy per sample: right 1, wrong 0, invalid 0 (strict); the *flexible*
  accuracy counts an invalid verdict as 0.5 (a coin flip), which separates
  "the judge is wrong" from "the judge did not answer".
* a multiclass verdict or label is compared on its sign (negative = A better).
* rewards: ``binary_reward`` 1/0; ``multiclass_reward`` 1 exact strength, 0.5
  right sign only, 0 otherwise; invalid always 0.
* voting@m: majority of the valid binary labels over the first m seeds; a tie
  scores 0.5, all-invalid stays invalid (0 strict, 0.5 flexible).
* swap=both: position consistency and JudgeBench pair accuracy, computed on
  verdicts mapped back to the original orientation, overall and in every roll-up row.

Labels are "A"/"B" (binary) or a signed int in −3..3 without 0 (multiclass);
both are always given in the orientation the judge saw (``RenderedPair.label``).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence, Union

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.genrm.verdict import Verdict, check_strength, order_corrected, strength_to_label

Label = Union[str, int]

PER_SAMPLE_ROW = "AVG (per-sample)"
MACRO_ROW = "macro"
MISSING_GROUP = "(none)"


# --------------------------------------------------------------------------- labels


def binary_label(label: Label) -> str:
    """The binary label of a ground truth: "A"/"B" as is, a strength by its sign."""
    if isinstance(label, str):
        if label not in ("A", "B"):
            raise ConfigError(f"a binary label must be 'A' or 'B', got {label!r}")
        return label
    return strength_to_label(label)


def flip_label(label: Label) -> Label:
    """The same ground truth with A and B exchanged (a strength is negated)."""
    if isinstance(label, str):
        return "B" if binary_label(label) == "A" else "A"
    return -check_strength(label)


# --------------------------------------------------------------------------- per sample


def is_correct(verdict: Verdict, label: Label) -> bool:
    """True when the verdict is valid and prefers the same response as the label."""
    return verdict.valid and verdict.label == binary_label(label)


def sample_accuracy(verdict: Verdict, label: Label) -> tuple[float, float]:
    """(strict, flexible) accuracy of one verdict: (1, 1) right, (0, 0) wrong, (0, 0.5) invalid,
    (0.5, 0.5) a tie (a reward model's equal scores: a coin flip, but the judge did answer)."""
    truth = binary_label(label)  # validate the label even when the verdict is invalid
    if verdict.tie:
        return 0.5, 0.5
    if not verdict.valid:
        return 0.0, 0.5
    score = 1.0 if verdict.label == truth else 0.0
    return score, score


def binary_reward(verdict: Verdict, label: Label) -> float:
    """RL/eval reward for binary preference: 1 if the preferred response is right, else 0."""
    return 1.0 if is_correct(verdict, label) else 0.0


def multiclass_reward(verdict: Verdict, strength_label: int) -> float:
    """RL/eval reward for multiclass: 1 exact strength, 0.5 right sign only, 0 otherwise.

    A valid verdict without a strength (parsed in binary mode) is refused: giving
    it 0.5 silently would hide a mode mismatch between template and reward.
    """
    check_strength(strength_label)
    if not verdict.valid:
        return 0.0
    if verdict.strength is None:
        raise ValueError("multiclass_reward needs a multiclass verdict (parse with mode='multiclass')")
    if verdict.strength == strength_label:
        return 1.0
    return 0.5 if verdict.label == strength_to_label(strength_label) else 0.0


@dataclass(frozen=True)
class ScoredSample:
    """One judged generation: which pair, which seed/orientation, what was said, how it scored.

    ``label`` is in the orientation the judge saw; ``swapped`` is the flag from
    ``render_pair`` (True: the chosen response was shown as B), needed to map
    verdicts back for voting and position consistency. ``tags`` holds extra
    roll-up keys such as ``{"domain": "math", "difficulty": "hard"}``.
    Build it with ``score_sample`` so ``correct``/``flexible`` match the verdict.
    """

    id: str
    section: str
    seed: int
    verdict: Verdict
    label: Label
    correct: float
    flexible: float
    output_tokens: Optional[int] = None
    swapped: bool = False
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def valid(self) -> bool:
        """Whether the judge produced a readable verdict."""
        return self.verdict.valid

    @property
    def canonical_verdict(self) -> Verdict:
        """The verdict mapped to the original orientation (chosen as A)."""
        return order_corrected(self.verdict, self.swapped)

    @property
    def canonical_label(self) -> Label:
        """The label mapped to the original orientation (chosen as A)."""
        return flip_label(self.label) if self.swapped else self.label


def score_sample(id: str, verdict: Verdict, label: Label, *, section: str = "all", seed: int = 0,
                 output_tokens: Optional[int] = None, swapped: bool = False,
                 tags: Optional[Mapping[str, str]] = None) -> ScoredSample:
    """Score one verdict against its label and wrap it in a ``ScoredSample``."""
    if output_tokens is not None and (isinstance(output_tokens, bool) or not isinstance(output_tokens, int)
                                      or output_tokens < 0):
        raise ValueError(f"output_tokens must be a non-negative int or None, got {output_tokens!r}")
    strict, flexible = sample_accuracy(verdict, label)
    return ScoredSample(id=str(id), section=str(section), seed=int(seed), verdict=verdict, label=label,
                        correct=strict, flexible=flexible, output_tokens=output_tokens,
                        swapped=bool(swapped), tags=dict(tags or {}))


# --------------------------------------------------------------------------- voting


def vote_accuracy(verdicts: Sequence[Verdict], label: Label) -> tuple[float, float, bool]:
    """(strict, flexible, invalid) for a majority vote of verdicts that share ``label``'s orientation.

    Majority over the valid binary labels; a tie scores 0.5 under both metrics
    (the vote is a coin flip, but the judge did answer), as do votes that are all
    ties; when every verdict is invalid the vote is invalid: 0 strict, 0.5 flexible.
    """
    truth = binary_label(label)
    right = sum(1 for v in verdicts if v.valid and v.label == truth)
    wrong = sum(1 for v in verdicts if v.valid and v.label != truth)
    if right + wrong == 0:
        if any(v.tie for v in verdicts):
            return 0.5, 0.5, False
        return 0.0, 0.5, True
    if right == wrong:
        return 0.5, 0.5, False
    score = 1.0 if right > wrong else 0.0
    return score, score, False


def _by_example(samples: Iterable[ScoredSample]) -> dict[str, list[ScoredSample]]:
    groups: dict[str, list[ScoredSample]] = defaultdict(list)
    for sample in samples:
        groups[sample.id].append(sample)
    return dict(groups)


def _canonical_truth(example_id: str, samples: Sequence[ScoredSample]) -> str:
    """The one binary ground truth of an example in the original orientation.

    Different seeds may show the pair in different orders, so the labels differ
    per sample; mapped back they must agree, otherwise the input is corrupt.
    """
    truths = {binary_label(s.canonical_label) for s in samples}
    if len(truths) != 1:
        raise ConfigError(f"example {example_id!r} has contradicting labels across samples")
    return truths.pop()


def voting_accuracy(samples: Iterable[ScoredSample], max_m: Optional[int] = None) -> dict[int, dict[str, float]]:
    """Voting@m' accuracy for every m' = 1..m, using the first m' seeds (seed order) of each example.

    m is the smallest number of distinct seeds any example has (capped by
    ``max_m``), so every m' uses the same number of seeds for every example.
    Verdicts are mapped to the original orientation first, so seeds that saw
    the pair in different orders vote together; with swap=both each seed
    contributes both of its orders. Returns ``{m': {"accuracy",
    "flexible_accuracy", "invalid_rate", "n_examples"}}``.
    """
    examples = _by_example(samples)
    if not examples:
        return {}
    seeds = {eid: sorted({s.seed for s in group}) for eid, group in examples.items()}
    m = min(len(s) for s in seeds.values())
    if max_m is not None:
        if max_m < 1:
            raise ValueError(f"max_m must be >= 1, got {max_m}")
        m = min(m, max_m)
    truths = {eid: _canonical_truth(eid, group) for eid, group in examples.items()}
    result: dict[int, dict[str, float]] = {}
    for m_prime in range(1, m + 1):
        strict_sum = flexible_sum = invalid_sum = 0.0
        for eid, group in examples.items():
            used = set(seeds[eid][:m_prime])
            verdicts = [s.canonical_verdict for s in group if s.seed in used]
            strict, flexible, invalid = vote_accuracy(verdicts, truths[eid])
            strict_sum += strict
            flexible_sum += flexible
            invalid_sum += invalid
        n = len(examples)
        result[m_prime] = {"accuracy": strict_sum / n, "flexible_accuracy": flexible_sum / n,
                           "invalid_rate": invalid_sum / n, "n_examples": n}
    return result


# --------------------------------------------------------------------------- swap=both


def orders_agree(corrected_first: Verdict, corrected_second: Verdict) -> bool:
    """Whether two order-corrected verdicts on the same pair prefer the same response.

    Any invalid verdict makes the pair inconsistent: a judge that fails to
    answer in one order has not shown it is order-independent. Multiclass
    verdicts are compared on their preferred side, not their strength.
    """
    return corrected_first.valid and corrected_second.valid and corrected_first.label == corrected_second.label


def judgebench_pair_score(verdict_1: Verdict, label_1: Label, verdict_2: Verdict, label_2: Label) -> int:
    """JudgeBench's score of a pair judged in both orders: +1 right, −1 wrong, 0 invalid, summed.

    Each verdict is compared with the label of the prompt it answered, so no
    orientation mapping is needed here. The pair counts as correct when > 0.
    """
    def one(verdict: Verdict, label: Label) -> int:
        truth = binary_label(label)
        if not verdict.valid:
            return 0
        return 1 if verdict.label == truth else -1

    return one(verdict_1, label_1) + one(verdict_2, label_2)


def order_pairs(samples: Iterable[ScoredSample]) -> list[tuple[ScoredSample, ScoredSample]]:
    """(original-order, swapped-order) sample pairs sharing an id and seed.

    (id, seed) groups judged in one order only are skipped; two samples with
    the same (id, seed, swapped) are a duplicate and refused.
    """
    slots: dict[tuple[str, int], dict[bool, ScoredSample]] = defaultdict(dict)
    for sample in samples:
        slot = slots[(sample.id, sample.seed)]
        if sample.swapped in slot:
            raise ConfigError(f"duplicate sample id={sample.id!r} seed={sample.seed} swapped={sample.swapped}")
        slot[sample.swapped] = sample
    return [(slot[False], slot[True]) for slot in slots.values() if len(slot) == 2]


def position_consistency(samples: Iterable[ScoredSample]) -> Optional[float]:
    """Share of both-order pairs whose order-corrected verdicts agree; None if there are none."""
    return order_metrics(list(samples))["position_consistency"]  # type: ignore[return-value]


def judgebench_pair_accuracy(samples: Iterable[ScoredSample]) -> Optional[float]:
    """Share of both-order pairs with a positive JudgeBench pair score; None if there are none."""
    return order_metrics(list(samples))["judgebench_pair_accuracy"]  # type: ignore[return-value]


# --------------------------------------------------------------------------- roll-ups


def length_stats(tokens: Iterable[Optional[int]]) -> Optional[dict[str, float]]:
    """Mean and median of the known output lengths (None entries skipped); None if none known."""
    known = [t for t in tokens if t is not None]
    if not known:
        return None
    return {"mean": float(statistics.fmean(known)), "median": float(statistics.median(known))}


def order_metrics(samples: Sequence[ScoredSample]) -> dict[str, object]:
    """``n_order_pairs``, ``position_consistency`` and ``judgebench_pair_accuracy`` of some samples
    (None when none of their pairs was judged in both orders)."""
    pairs = order_pairs(samples)
    if not pairs:
        return {"n_order_pairs": 0, "position_consistency": None, "judgebench_pair_accuracy": None}
    agree = sum(orders_agree(a.canonical_verdict, b.canonical_verdict) for a, b in pairs)
    wins = sum(judgebench_pair_score(a.verdict, a.label, b.verdict, b.label) > 0 for a, b in pairs)
    return {"n_order_pairs": len(pairs), "position_consistency": agree / len(pairs),
            "judgebench_pair_accuracy": wins / len(pairs)}


def _row(samples: Sequence[ScoredSample]) -> dict[str, object]:
    n = len(samples)
    lengths = length_stats(s.output_tokens for s in samples)
    return {
        "n": n,
        "accuracy": sum(s.correct for s in samples) / n,
        "flexible_accuracy": sum(s.flexible for s in samples) / n,
        "invalid_rate": sum(not s.valid and not s.verdict.tie for s in samples) / n,
        "mean_output_tokens": None if lengths is None else lengths["mean"],
        "median_output_tokens": None if lengths is None else lengths["median"],
        **order_metrics(samples),
    }


def group_value(sample: ScoredSample, key: str) -> str:
    """The sample's value for a roll-up key: ``section`` is a field, others come from ``tags``."""
    if key == "section":
        return sample.section
    return str(sample.tags.get(key, MISSING_GROUP))


def rollup(samples: Sequence[ScoredSample], key: str) -> dict[str, dict[str, object]]:
    """Accuracy rows per value of ``key``, plus the per-sample mean and the macro average.

    Both averages are reported because they answer different questions: the
    per-sample mean weights big sections more (it is "accuracy on this data"),
    the macro average weights every section equally (it is what a benchmark
    with unbalanced sections, e.g. RewardBench, usually reports).
    """
    if not samples:
        raise ConfigError("cannot roll up an empty list of samples")
    groups: dict[str, list[ScoredSample]] = defaultdict(list)
    for sample in samples:
        groups[group_value(sample, key)].append(sample)
    reserved = {PER_SAMPLE_ROW, MACRO_ROW} & set(groups)
    if reserved:
        raise ConfigError(f"{key} value(s) {sorted(reserved)} collide with the roll-up row names")
    rows: dict[str, dict[str, object]] = {name: _row(groups[name]) for name in sorted(groups)}
    per_group = list(rows.values())
    rows[PER_SAMPLE_ROW] = _row(samples)
    rows[MACRO_ROW] = {
        "n_groups": len(per_group),
        "accuracy": statistics.fmean(r["accuracy"] for r in per_group),
        "flexible_accuracy": statistics.fmean(r["flexible_accuracy"] for r in per_group),
        "invalid_rate": statistics.fmean(r["invalid_rate"] for r in per_group),
    }
    return rows


def _check_unique(samples: Sequence[ScoredSample]) -> None:
    seen: set[tuple[str, int, bool]] = set()
    for s in samples:
        key = (s.id, s.seed, s.swapped)
        if key in seen:
            raise ConfigError(f"duplicate sample id={s.id!r} seed={s.seed} swapped={s.swapped}")
        seen.add(key)


def summarize(samples: Iterable[ScoredSample], group_keys: Optional[Sequence[str]] = None,
              max_m: Optional[int] = None) -> dict[str, object]:
    """All evaluation metrics of a run as a plain JSON-serialisable dict.

    ``group_keys`` defaults to "section" plus every tag key present. Keys:

    * ``n_samples`` (generations), ``n_examples`` (distinct ids)
    * ``accuracy`` (strict), ``flexible_accuracy`` (invalid = 0.5),
      ``invalid_rate``: per-sample means over all generations
    * ``strength_accuracy``: share of exact strength hits among samples with a
      multiclass (int) label, None when there are none
    * ``output_tokens``: ``{"mean", "median"}`` over known lengths, or None
    * ``groups``: ``{key: {value: row, ..., "AVG (per-sample)": row, "macro":
      macro_row}}``; row = ``{"n", "accuracy", "flexible_accuracy",
      "invalid_rate", "mean_output_tokens", "median_output_tokens", "n_order_pairs",
      "position_consistency", "judgebench_pair_accuracy"}`` (the last two None without both-order pairs),
      macro_row = ``{"n_groups", "accuracy", "flexible_accuracy", "invalid_rate"}``
    * ``voting``: ``{"1": {...}, ..., "m": {...}}`` (string keys for JSON), each
      ``{"accuracy", "flexible_accuracy", "invalid_rate", "n_examples"}``
    * ``n_order_pairs``, ``position_consistency``, ``judgebench_pair_accuracy``:
      swap=both metrics, None when no pair was judged in both orders
    """
    samples = list(samples)
    if not samples:
        raise ConfigError("summarize needs at least one scored sample")
    _check_unique(samples)
    if group_keys is None:
        group_keys = ["section"] + sorted({k for s in samples for k in s.tags})
    overall = _row(samples)
    strength_hits = [s.verdict.strength == s.label for s in samples if not isinstance(s.label, str)]
    return {
        "n_samples": len(samples),
        "n_examples": len({s.id for s in samples}),
        "accuracy": overall["accuracy"],
        "flexible_accuracy": overall["flexible_accuracy"],
        "invalid_rate": overall["invalid_rate"],
        "strength_accuracy": (sum(strength_hits) / len(strength_hits)) if strength_hits else None,
        "output_tokens": length_stats(s.output_tokens for s in samples),
        "groups": {key: rollup(samples, key) for key in group_keys},
        "voting": {str(m): row for m, row in voting_accuracy(samples, max_m).items()},
        "n_order_pairs": overall["n_order_pairs"],
        "position_consistency": overall["position_consistency"],
        "judgebench_pair_accuracy": overall["judgebench_pair_accuracy"],
    }
