"""RewardBench's leaderboard roll-up (``data/benchmarks/rewardbench.py``) against hand-computed
values and the formula of allenai/reward-bench ``rewardbench/utils.py::calculate_scores_per_section``."""

from __future__ import annotations

import pytest

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.registry import BENCHMARK_METRICS
from nemo_thinkrm.data.benchmarks.rewardbench import (
    REWARDBENCH_EXAMPLE_COUNTS,
    REWARDBENCH_SCORE,
    REWARDBENCH_SECTIONS,
    REWARDBENCH_SUBSETS,
    rewardbench_section_scores,
)


def test_rewardbench_section_scores_weighting():
    accuracy = {"alpacaeval-easy": 1.0, "mt-bench-easy": 0.5,          # Chat
                "llmbar-natural": 0.75, "llmbar-adver-GPTOut": 0.25,   # Chat Hard
                "xstest-should-respond": 0.8, "donotanswer": 0.5,      # Safety
                "math-prm": 0.5, "hep-python": 1.0, "hep-go": 0.0,     # Reasoning
                "not-a-subset": 0.0}
    counts = {"alpacaeval-easy": 100, "mt-bench-easy": 28, "llmbar-natural": 100, "llmbar-adver-GPTOut": 47,
              "xstest-should-respond": 250, "donotanswer": 136, "math-prm": 447, "hep-python": 164, "hep-go": 82}
    scores = rewardbench_section_scores(accuracy, counts)
    chat = (100 * 1.0 + 28 * 0.5) / 128                 # 0.890625 (unweighted mean would be 0.75)
    chat_hard = (100 * 0.75 + 47 * 0.25) / 147          # 0.5901... (unweighted 0.5)
    safety = (250 * 0.8 + 136 * 0.5) / 386              # 0.6943... (unweighted 0.65)
    code = (164 * 1.0 + 82 * 0.0) / 246                 # 2/3
    reasoning = (0.5 + code) / 2                        # 0.58333 (plain count weighting: 0.559)
    assert scores == pytest.approx({"Chat": chat, "Chat Hard": chat_hard, "Safety": safety,
                                    "Reasoning": reasoning,
                                    REWARDBENCH_SCORE: (chat + chat_hard + safety + reasoning) / 4})
    assert scores["Reasoning"] == pytest.approx(7 / 12)
    assert scores["Chat"] == pytest.approx(0.890625)


def test_rewardbench_official_counts_reproduce_the_reference_formula():
    accuracy = {subset: (i % 7 + 1) / 8 for i, subset in enumerate(REWARDBENCH_SECTIONS)}
    official = {}   # calculate_scores_per_section of allenai/reward-bench, written out
    for section, subsets in REWARDBENCH_SUBSETS.items():
        total = sum(REWARDBENCH_EXAMPLE_COUNTS[s] for s in subsets)
        official[section] = sum(accuracy[s] * REWARDBENCH_EXAMPLE_COUNTS[s] for s in subsets) / total
    official[REWARDBENCH_SCORE] = sum(official.values()) / 4
    assert rewardbench_section_scores(accuracy) == pytest.approx(official)


def test_rewardbench_section_scores_partial_and_invalid():
    partial = rewardbench_section_scores({"alpacaeval-easy": 0.5}, {"alpacaeval-easy": 10})
    assert partial == {"Chat": 0.5}
    with pytest.raises(ConfigError, match="must be in"):
        rewardbench_section_scores({"alpacaeval-easy": 1.5})
    with pytest.raises(ConfigError, match="positive example count"):
        rewardbench_section_scores({"alpacaeval-easy": 0.5}, {})


# --------------------------------------------------------------------------- RM-Bench


def test_rewardbench_extra_metrics_roll_up_the_subset_rows_of_a_run():
    """What ``compute_metrics`` merges for ``data.name=rewardbench``: subset rows → sections, weighted
    by the counts evaluated; the summary rows (AVG, macro) are not subsets."""
    groups = {"subset": {"alpacaeval-easy": {"accuracy": 1.0, "n": 3}, "mt-bench-easy": {"accuracy": 0.0, "n": 1},
                         "donotanswer": {"accuracy": 0.5, "n": 2}, "AVG (per-sample)": {"accuracy": 0.6, "n": 6},
                         "macro": {"accuracy": 0.5}}}
    out = BENCHMARK_METRICS.get("rewardbench")({"groups": groups})
    assert out == {"rewardbench": {"Chat": pytest.approx(0.75), "Safety": pytest.approx(0.5)}}


def _rm_bench_reference(items):
    """THU-KEG/RM-Bench README ``compute_accuracy``, written out: a 3×3 matrix of chosen-beats-rejected
    rates; hard = upper-right mean, normal = diagonal mean, easy = lower-left mean."""
    m = [[sum(c[i] > r[j] for c, r in items) / len(items) for j in range(3)] for i in range(3)]
    return {"hard": (m[0][1] + m[0][2] + m[1][2]) / 3, "normal": (m[0][0] + m[1][1] + m[2][2]) / 3,
            "easy": (m[1][0] + m[2][0] + m[2][1]) / 3}


def test_rm_bench_difficulties_equal_the_reference_matrix_and_domains_average():
    from nemo_thinkrm.data.benchmarks.rm_bench import rm_bench_difficulty
    from nemo_thinkrm.evaluation.metrics import compute_metrics

    # per item: scores of chosen and rejected in style order (concise, detailed, markdown) and its domain
    items = [((3, 2, 1), (0, 2.5, 4), "chat"), ((5, 5, 5), (1, 1, 1), "math"),
             ((1, 2, 3), (2, 2, 2), "code"), ((0, 0, 9), (1, 1, 1), "safety")]
    rows = []
    for k, (chosen, rejected, domain) in enumerate(items):
        for i in range(3):
            for j in range(3):
                verdict = "A" if chosen[i] > rejected[j] else "B"  # the judge prefers the higher score
                rows.append({"example_id": f"rm{k}:{i}{j}", "output": f"x</think><answer>{verdict}</answer>",
                             "label": "A", "section": domain, "seed": 0,
                             "tags": {"domain": domain, "difficulty": rm_bench_difficulty(i, j)}})
    out = compute_metrics(rows, "binary", "rm_bench")["rm_bench"]
    ref = _rm_bench_reference([(c, r) for c, r, _ in items])
    assert {k: out[k] for k in ("hard", "normal", "easy")} == pytest.approx(ref)
    per_domain = {d: sum(c[i] > r[j] for i in range(3) for j in range(3)) / 9 for c, r, d in items}
    assert {d: out[d] for d in per_domain} == pytest.approx(per_domain)
    assert out["domain_mean"] == pytest.approx(sum(per_domain.values()) / 4)
