"""Scoring, rewards, voting@m, swap=both metrics and roll-ups on hand-built fixtures.

Every expected number is worked out by hand in the comments next to it.
"""

import json

import pytest

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.genrm.scoring import (
    MACRO_ROW,
    PER_SAMPLE_ROW,
    binary_reward,
    flip_label,
    judgebench_pair_accuracy,
    judgebench_pair_score,
    multiclass_reward,
    orders_agree,
    position_consistency,
    rollup,
    sample_accuracy,
    score_sample,
    summarize,
    vote_accuracy,
    voting_accuracy,
)
from nemo_thinkrm.genrm.verdict import INVALID, TIE, Verdict

A = Verdict("A", None, True)
B = Verdict("B", None, True)


def multi(strength):
    return Verdict("A" if strength < 0 else "B", strength, True)


# --------------------------------------------------------------------------- per sample / rewards


def test_sample_accuracy_strict_and_flexible():
    assert sample_accuracy(A, "A") == (1.0, 1.0)
    assert sample_accuracy(B, "A") == (0.0, 0.0)
    assert sample_accuracy(INVALID, "B") == (0.0, 0.5)
    assert sample_accuracy(multi(-1), -3) == (1.0, 1.0)   # compared on sign
    assert sample_accuracy(multi(2), "A") == (0.0, 0.0)
    assert sample_accuracy(A, 2) == (0.0, 0.0)


def test_a_tie_counts_half_and_is_not_invalid():
    """A reward model's equal scores: 0.5 strict and flexible (issue 18's rule), not an invalid verdict."""
    assert sample_accuracy(TIE, "A") == (0.5, 0.5) and sample_accuracy(TIE, 3) == (0.5, 0.5)
    assert binary_reward(TIE, "A") == 0.0
    assert vote_accuracy([TIE], "B") == (0.5, 0.5, False)
    assert vote_accuracy([TIE, A], "A") == (1.0, 1.0, False)  # a tie casts no vote beside a valid one
    with pytest.raises(ValueError):
        Verdict("A", None, True, tie=True)
    # right, tie, wrong, invalid: accuracy (1 + .5 + 0 + 0) / 4, flexible (1 + .5 + 0 + .5) / 4, invalid 1/4
    samples = [score_sample(str(i), v, "A") for i, v in enumerate([A, TIE, B, INVALID])]
    m = summarize(samples)
    assert (m["accuracy"], m["flexible_accuracy"], m["invalid_rate"]) == (0.375, 0.5, 0.25)
    assert m["voting"]["1"]["accuracy"] == 0.375 and m["voting"]["1"]["invalid_rate"] == 0.25


def test_binary_reward():
    assert binary_reward(A, "A") == 1.0
    assert binary_reward(B, "A") == 0.0
    assert binary_reward(INVALID, "A") == 0.0
    assert binary_reward(multi(-2), "A") == 1.0
    assert binary_reward(B, 3) == 1.0


def test_multiclass_reward():
    assert multiclass_reward(multi(-2), -2) == 1.0   # exact strength
    assert multiclass_reward(multi(-1), -2) == 0.5   # right sign only
    assert multiclass_reward(multi(-3), -2) == 0.5
    assert multiclass_reward(multi(2), -2) == 0.0    # wrong sign
    assert multiclass_reward(multi(3), 3) == 1.0
    assert multiclass_reward(INVALID, 1) == 0.0
    with pytest.raises(ValueError, match="multiclass verdict"):
        multiclass_reward(A, -1)


@pytest.mark.parametrize("bad", ["a", "C", 0, 4, -4, True, None])
def test_bad_labels_raise(bad):
    with pytest.raises((ConfigError, TypeError)):
        sample_accuracy(A, bad)


def test_flip_label():
    assert flip_label("A") == "B"
    assert flip_label(-2) == 2


def test_score_sample_fields():
    s = score_sample("x", INVALID, "A", section="chat", seed=3, output_tokens=12)
    assert (s.id, s.section, s.seed, s.correct, s.flexible, s.valid, s.output_tokens) == \
        ("x", "chat", 3, 0.0, 0.5, False, 12)
    with pytest.raises(ValueError):
        score_sample("x", A, "A", output_tokens=-1)


# --------------------------------------------------------------------------- voting


def test_vote_accuracy_rules():
    assert vote_accuracy([A, A, B], "A") == (1.0, 1.0, False)
    assert vote_accuracy([A, B, B], "A") == (0.0, 0.0, False)
    assert vote_accuracy([A, B, INVALID], "A") == (0.5, 0.5, False)   # tie among valid
    assert vote_accuracy([INVALID, INVALID], "B") == (0.0, 0.5, True)  # all invalid
    assert vote_accuracy([INVALID, B], "B") == (1.0, 1.0, False)      # invalid votes are ignored


def _voting_fixture():
    rows = [
        # e1: label A, votes A, B, A -> m1: 1, m2: tie .5, m3: 1
        ("e1", 0, False, "A", A), ("e1", 1, False, "A", B), ("e1", 2, False, "A", A),
        # e2: all invalid -> strict 0 / flexible .5 / invalid for every m
        ("e2", 0, False, "A", INVALID), ("e2", 1, False, "A", INVALID), ("e2", 2, False, "A", INVALID),
        # e3: mixed orientations; canonical truth is A.
        #   seed0 swapped, says B (= A canonical, right); seed1 says B (wrong);
        #   seed2 swapped, says A (= B canonical, wrong) -> m1: 1, m2: tie .5, m3: 0
        ("e3", 0, True, "B", B), ("e3", 1, False, "A", B), ("e3", 2, True, "B", A),
        # e4: invalid, right, wrong -> m1: invalid (0 / .5), m2: 1, m3: tie .5
        ("e4", 0, False, "B", INVALID), ("e4", 1, False, "B", B), ("e4", 2, False, "B", A),
    ]
    samples = [score_sample(eid, v, label, seed=seed, swapped=sw) for eid, seed, sw, label, v in rows]
    return list(reversed(samples))  # input order must not matter, seed order does


def test_voting_every_m():
    result = voting_accuracy(_voting_fixture())
    assert sorted(result) == [1, 2, 3]
    # m1: strict 1,0,1,0 = 2/4; flexible 1,.5,1,.5 = 3/4; invalid e2,e4 = 2/4
    assert result[1] == {"accuracy": 0.5, "flexible_accuracy": 0.75, "invalid_rate": 0.5, "n_examples": 4}
    # m2: strict .5,0,.5,1 = 2/4; flexible .5,.5,.5,1 = 2.5/4; invalid e2 = 1/4
    assert result[2] == {"accuracy": 0.5, "flexible_accuracy": 0.625, "invalid_rate": 0.25, "n_examples": 4}
    # m3: strict 1,0,0,.5 = 1.5/4; flexible 1,.5,0,.5 = 2/4; invalid e2 = 1/4
    assert result[3] == {"accuracy": 0.375, "flexible_accuracy": 0.5, "invalid_rate": 0.25, "n_examples": 4}


def test_voting_m_is_limited_by_fewest_seeds_and_max_m():
    samples = _voting_fixture() + [score_sample("e5", A, "A", seed=7), score_sample("e5", A, "A", seed=9)]
    assert sorted(voting_accuracy(samples)) == [1, 2]
    assert sorted(voting_accuracy(samples, max_m=1)) == [1]
    # e5's first seed is 7 (not 0): m1 adds one right vote -> strict (2+1)/5
    assert voting_accuracy(samples)[1]["accuracy"] == 0.6


def test_voting_refuses_contradicting_labels():
    samples = [score_sample("e", A, "A", seed=0), score_sample("e", A, "B", seed=1)]
    with pytest.raises(ConfigError, match="contradicting labels"):
        voting_accuracy(samples)


# --------------------------------------------------------------------------- swap=both


def _pair_fixture():
    # (orig verdict, swapped verdict); orig label "A", swapped label "B".
    pairs = {
        "p1": (A, B),              # both right: consistent, JB +2
        "p2": (A, A),              # right, wrong: inconsistent, JB 0
        "p3": (INVALID, B),        # invalid, right: inconsistent, JB +1
        "p4": (B, A),              # both wrong: consistent, JB -2
        "p5": (INVALID, INVALID),  # inconsistent, JB 0
        "p6": (B, A),              # both wrong again: consistent, JB -2
    }
    samples = []
    for pid, (v_orig, v_swap) in pairs.items():
        samples.append(score_sample(pid, v_orig, "A", section="s", swapped=False))
        samples.append(score_sample(pid, v_swap, "B", section="s", swapped=True))
    return samples


def test_orders_agree_and_pair_score():
    assert orders_agree(A, A) is True
    assert orders_agree(A, B) is False
    assert orders_agree(INVALID, INVALID) is False
    assert orders_agree(multi(-1), multi(-3)) is True   # compared on side, not strength
    assert judgebench_pair_score(A, "A", B, "B") == 2
    assert judgebench_pair_score(INVALID, "A", B, "B") == 1
    assert judgebench_pair_score(B, "A", INVALID, "B") == -1
    assert judgebench_pair_score(A, "A", A, "B") == 0


def test_position_consistency_and_judgebench():
    samples = _pair_fixture()
    assert position_consistency(samples) == 3 / 6      # p1, p4, p6
    assert judgebench_pair_accuracy(samples) == 2 / 6  # p1 (+2), p3 (+1)


def test_pair_metrics_none_without_both_orders():
    samples = [score_sample("x", A, "A", swapped=False), score_sample("y", A, "B", swapped=True)]
    assert position_consistency(samples) is None
    assert judgebench_pair_accuracy(samples) is None


# --------------------------------------------------------------------------- roll-ups


def _rollup_fixture():
    # chat: 4 samples, 3 right, 1 wrong -> acc .75, flexible .75, invalid 0
    # safety: 2 samples, 1 right, 1 invalid -> acc .5, flexible .75, invalid .5
    rows = [
        ("c1", "chat", A, "A", 100, "easy"), ("c2", "chat", B, "B", 200, "easy"),
        ("c3", "chat", A, "A", 300, "hard"), ("c4", "chat", A, "B", 400, "hard"),
        ("s1", "safety", B, "B", 50, "hard"), ("s2", "safety", INVALID, "A", 1000, "hard"),
    ]
    return [score_sample(i, v, lab, section=sec, output_tokens=tok, tags={"difficulty": diff})
            for i, sec, v, lab, tok, diff in rows]


NO_ORDER_PAIRS = {"n_order_pairs": 0, "position_consistency": None, "judgebench_pair_accuracy": None}


def test_rollup_per_sample_vs_macro():
    rows = rollup(_rollup_fixture(), "section")
    assert list(rows) == ["chat", "safety", PER_SAMPLE_ROW, MACRO_ROW]
    assert rows["chat"] == {"n": 4, "accuracy": 0.75, "flexible_accuracy": 0.75, "invalid_rate": 0.0,
                            "mean_output_tokens": 250.0, "median_output_tokens": 250.0, **NO_ORDER_PAIRS}
    assert rows["safety"] == {"n": 2, "accuracy": 0.5, "flexible_accuracy": 0.75, "invalid_rate": 0.5,
                              "mean_output_tokens": 525.0, "median_output_tokens": 525.0, **NO_ORDER_PAIRS}
    # per-sample: 4 right of 6; flexible (3 + 1.5)/6; 1 invalid of 6; tokens 2050/6, median(200, 300)
    per_sample = rows[PER_SAMPLE_ROW]
    assert per_sample["n"] == 6
    assert per_sample["accuracy"] == pytest.approx(4 / 6)
    assert per_sample["flexible_accuracy"] == 0.75
    assert per_sample["invalid_rate"] == pytest.approx(1 / 6)
    assert per_sample["mean_output_tokens"] == pytest.approx(2050 / 6)
    assert per_sample["median_output_tokens"] == 250.0
    # macro: (.75 + .5)/2, (.75 + .75)/2, (0 + .5)/2
    assert rows[MACRO_ROW] == {"n_groups": 2, "accuracy": 0.625, "flexible_accuracy": 0.75, "invalid_rate": 0.25}


def test_summarize_keys_and_values():
    summary = summarize(_rollup_fixture())
    json.dumps(summary)  # must be JSON-serialisable
    assert set(summary) == {
        "n_samples", "n_examples", "accuracy", "flexible_accuracy", "invalid_rate", "strength_accuracy",
        "output_tokens", "groups", "voting", "n_order_pairs", "position_consistency",
        "judgebench_pair_accuracy"}
    assert (summary["n_samples"], summary["n_examples"]) == (6, 6)
    assert summary["accuracy"] == pytest.approx(4 / 6)
    assert summary["output_tokens"] == {"mean": pytest.approx(2050 / 6), "median": 250.0}
    assert summary["strength_accuracy"] is None
    assert list(summary["groups"]) == ["section", "difficulty"]
    # difficulty: easy c1,c2 both right -> 1.0; hard c3 right, c4 wrong, s1 right, s2 invalid -> .5
    difficulty = summary["groups"]["difficulty"]
    assert (difficulty["easy"]["accuracy"], difficulty["hard"]["accuracy"]) == (1.0, 0.5)
    assert difficulty["hard"]["flexible_accuracy"] == 0.625
    assert difficulty[MACRO_ROW]["accuracy"] == 0.75
    assert summary["voting"] == {"1": {"accuracy": pytest.approx(4 / 6), "flexible_accuracy": 0.75,
                                       "invalid_rate": pytest.approx(1 / 6), "n_examples": 6}}
    assert (summary["n_order_pairs"], summary["position_consistency"]) == (0, None)


def test_summarize_swap_both_and_strength():
    summary = summarize(_pair_fixture())
    assert summary["n_order_pairs"] == 6
    assert summary["position_consistency"] == 0.5
    assert summary["judgebench_pair_accuracy"] == pytest.approx(1 / 3)
    assert summary["output_tokens"] is None
    strength = summarize([score_sample("a", multi(-2), -2), score_sample("b", multi(-1), -2),
                          score_sample("c", INVALID, 3), score_sample("d", multi(3), 3)])
    assert strength["strength_accuracy"] == 0.5    # a and d exact
    assert strength["accuracy"] == 0.75            # a, b, d right side


def test_summarize_rejects_bad_input():
    with pytest.raises(ConfigError, match="at least one"):
        summarize([])
    with pytest.raises(ConfigError, match="duplicate"):
        summarize([score_sample("a", A, "A"), score_sample("a", B, "A")])
    with pytest.raises(ConfigError, match="collide"):
        summarize([score_sample("a", A, "A", section="macro")])
