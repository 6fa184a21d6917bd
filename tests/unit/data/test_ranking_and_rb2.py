"""Ranking N responses with a pairwise judge (genrm/ranking.py) against hand-worked brackets and win
matrices, and RewardBench 2's roll-up (data/benchmarks/rewardbench2.py) against hand-built
items in its schema: best-of-4 with ties, the Ties subset's weighted formula, the unweighted overall."""

import pytest

from nemo_thinkrm.data.benchmarks.rewardbench2 import (RB2Item, best_of_n_result, pairwise_win_scores, rollup,
                                                             ties_score)
from nemo_thinkrm.genrm.ranking import all_pairs, by_scores, knockout, merge_sort, rank, rank_many

STRENGTH = [0.1, 0.9, 0.5, 0.3, 0.7]


def stronger(i, j):
    return 1.0 if STRENGTH[i] > STRENGTH[j] else 0.0


def test_knockout_bracket():
    r = knockout(5, stronger, seed=0)
    # by hand: seed 0 shows the responses as random.Random(0).shuffle does, [2, 1, 0, 4, 3]; round 1 pairs
    # neighbours, (2, 1) → 1 and (0, 4) → 4, 3 has a bye; round 2 (1, 4) → 1, 3 a bye again; final (1, 3) → 1.
    # Order: the winner, then the losers latest-out first: the final's 3, then 4, then 0 and 2.
    assert r.bracket == [(2, 1, 1), (0, 4, 4), (1, 4, 1), (1, 3, 1)]
    assert r.comparisons == 4 and r.winner == 1 and r.order == [1, 3, 4, 0, 2]
    assert knockout(5, stronger, seed=0).order == r.order  # seeded: reproducible
    assert knockout(5, stronger, seed=1).bracket != r.bracket  # another seed, another bracket


def test_sort_with_the_judge_as_comparator():
    # by hand, seed 0 shows [2, 1, 0, 4, 3]: level 1 merges (2, 1) and (0, 4) in one round, 3 waits:
    # 1 beats 2, 4 beats 0 -> runs [1, 2], [4, 0], [3]; level 2 merges [1, 2] with [4, 0]: 1 > 4, 4 > 2,
    # 2 > 0 (3 rounds) -> [1, 4, 2, 0], [3] waits; level 3: 1 > 3, 4 > 3, 2 > 3, 3 > 0 (4 rounds)
    r = merge_sort(5, stronger, seed=0)
    assert r.order == [1, 4, 2, 3, 0] == sorted(range(5), key=lambda i: -STRENGTH[i])
    assert r.comparisons == 2 * (2 + 3 + 4)                  # every comparison asked in both orders
    assert rank("sort", 5, compare=stronger, seed=0).order == r.order
    for seed in range(5):                                      # any shuffle sorts a transitive judge right
        assert merge_sort(5, stronger, seed=seed).order == r.order
    assert merge_sort(1, stronger).order == [0] and merge_sort(1, stronger).comparisons == 0
    # a judge that always prefers the response shown first: both orders cancel, every comparison a tie,
    # which keeps the earlier response of the shuffle: the order is the shuffle itself
    assert merge_sort(5, lambda i, j: 1.0, seed=0).order == [2, 1, 0, 4, 3]
    # many items, one judge batch per round: the same rankings as one at a time
    asked = []

    def ask(todo):
        asked.append(len(todo))
        return [stronger(i, j) for _, i, j in todo]
    many = rank_many("sort", [5, 3, 1], ask, seeds=[0, 1, 2])
    assert [m.order for m in many] == [r.order, merge_sort(3, stronger, seed=1).order, [0]]
    assert sum(asked) == sum(m.comparisons for m in many) and len(asked) == 1 + 3 + 4   # the 5-item sort's rounds


def test_all_pairs_copeland_with_a_cycle():
    beats = {(0, 1), (1, 2), (2, 0), (0, 3), (1, 3), (2, 3)}  # rock-paper-scissors, and 3 loses to all

    def judge(i, j):
        return 1.0 if (i, j) in beats else 0.0
    r = all_pairs(4, judge, both_orders=True)
    assert r.comparisons == 12
    assert r.wins == [[0, 1, 0, 1], [0, 0, 1, 1], [1, 0, 0, 1], [0, 0, 0, 0]]
    assert r.order == [0, 1, 2, 3]  # 2 wins each for 0, 1, 2: ties broken by index


def test_both_orders_cancel_position_bias():
    first_wins = lambda i, j: 1.0  # noqa: E731  a judge that always prefers the response shown first
    balanced = all_pairs(3, first_wins, both_orders=True)
    assert all(balanced.wins[i][j] == 0.5 for i in range(3) for j in range(3) if i != j)
    biased = all_pairs(3, first_wins, both_orders=False)
    assert biased.comparisons == 3 and biased.order == [0, 1, 2] and [sum(r) for r in biased.wins] == [2, 1, 0]


def test_scores_and_dispatch():
    assert by_scores([0.2, 3.0, -1.0]).order == [1, 0, 2]
    assert rank("scores", 3, scores=[0.2, 3.0, -1.0]).comparisons == 0
    with pytest.raises(ValueError, match="valid: knockout, all_pairs, sort, scores"):
        rank("swiss", 3, compare=stronger)


def test_best_of_four():
    assert best_of_n_result([3, 1, 2, 0]) == 1.0
    assert best_of_n_result([2, 2, 1, 0]) == 0.5  # shares the top with one other
    assert best_of_n_result([1, 3, 0, 0]) == 0.0
    assert best_of_n_result([2, 2, 2, 2]) == 0.25  # all tied: chance
    # a pairwise judge: chosen (0) beats 1 and 2 but loses to 3 → not the top scorer
    wins = pairwise_win_scores(4, {(0, 1): 1.0, (0, 2): 1.0, (0, 3): 0.0, (1, 2): 0.5, (1, 3): 0.0, (2, 3): 0.0})
    assert wins == [2.0, 0.5, 0.5, 3.0] and best_of_n_result(wins) == 0.0


TIES = [RB2Item("ref:0", "Ties", [5, 1, 2], 1),  # accurate, gap 3
        RB2Item("tied:0", "Ties", [6, 5, 4, 1, 2], 3),  # accurate, spread 2, gap 2
        RB2Item("ref:1", "Ties", [1, 3], 1),  # wrong, gap −2
        RB2Item("tied:1", "Ties", [4, 4, 0], 2)]  # accurate, spread 0, gap 4


def test_ties_formula_by_hand():
    # ref acc ½, tied acc 1; prompt 0: 2 > 2 no, min(3, 2) > 2 no, tanh(2/2 − 1) = 0;
    # prompt 1: 4 > 0 yes, min(−2, 4) > 0 no, −2/0 = −inf → tanh −1
    expected = 0.30 * 1.0 + 0.30 * 0.5 + 0.20 * 0.5 + 0.20 * 0.0 + 0.01 * (-0.5)
    assert ties_score(TIES) == pytest.approx(expected) == pytest.approx(0.545)


def test_rollup_is_the_unweighted_mean_of_subsets():
    items = [RB2Item("f1", "Factuality", [3, 1, 2, 0]), RB2Item("f2", "Factuality", [2, 2, 1, 0]),
             RB2Item("m1", "Math", [0, 1, 2, 3]), *TIES]
    out = rollup(items)
    assert out["Factuality"] == 0.75 and out["Math"] == 0.0 and out["Ties"] == pytest.approx(0.545)
    assert out["Overall"] == pytest.approx((0.75 + 0.0 + 0.545) / 3)
    with pytest.raises(ValueError, match="unknown RewardBench 2 subset 'Chat'"):
        rollup([RB2Item("x", "Chat", [1, 0])])


def test_adapter_pairs_the_chosen_response_with_each_rejected_one():
    from pathlib import Path

    from nemo_thinkrm.data.preference import load_preference_data

    path = Path(__file__).parents[2] / "fixtures" / "preference" / "rewardbench2.jsonl"
    loaded = load_preference_data("rewardbench2", path=str(path))
    pairwise = [r for r in loaded.records if not r.tags.get("scores_only")]
    assert [r.id.split(":", 1)[1] for r in pairwise] == ["1:r0", "1:r1", "1:r2", "2:r0", "2:r1", "2:r2"]
    assert all(r.chosen == r.response_a for r in loaded.records)
    assert {r.tags["item"] for r in pairwise} == {"Factuality/1", "Math/2"}
    # Ties: response 0 against each other one, for a reward model's scores (tied:3 has 2 correct, ref:3 one)
    ties = [r for r in loaded.records if r.tags.get("scores_only")]
    assert [(r.id.split(":", 1)[1], r.tags["response"], r.tags["num_correct"]) for r in ties] == [
        ("tied:3:t1", "1", "2"), ("tied:3:t2", "2", "2"), ("tied:3:t3", "3", "2"),
        ("ref:3:t1", "1", "1"), ("ref:3:t2", "2", "1")]
    reasons = dict(loaded.skipped)
    assert len(reasons) == 3 and any("rejected[0] is empty" in v for v in reasons.values())
    assert any("unknown RewardBench 2 subset 'Chat'" in v for v in reasons.values())
    assert any("a Ties item id is 'ref:N' or 'tied:N', got '3'" in v for v in reasons.values())


def _rm_row(item, example_id, a, b, **tags):
    return {"example_id": example_id, "tags": {"item": item, **tags}, "scores": {"A": a, "B": b}}


def test_reward_model_roll_up_uses_every_score_and_scores_ties():
    from nemo_thinkrm.data.benchmarks.rewardbench2 import extra_metrics

    rows = [_rm_row("Factuality/1", f"rb2:1:r{k}", 3.0, b) for k, b in enumerate([1.0, 2.0, 0.0])]  # right
    rows += [_rm_row("Math/2", f"rb2:2:r{k}", 2.0, b) for k, b in enumerate([2.0, 1.0, 0.0])]  # shares top: ½
    rows += [_rm_row("Math/5", f"rb2:5:r{k}", 1.0, None) for k in range(3)]  # unscored: left out
    # the Ties items of TIES above, as response 0 against each other one
    for it in TIES:
        rows += [_rm_row(f"Ties/{it.id}", f"rb2:{it.id}:t{j}", it.scores[0], s, scores_only="true",
                         response=str(j), num_correct=str(it.num_correct)) for j, s in enumerate(it.scores) if j]
    metrics = {"groups": {"item": {"Factuality/1": {"n": 3, "accuracy": 1.0}}}}
    out = extra_metrics(metrics, rows)
    assert out["rewardbench2"]["Factuality"] == 1.0 and out["rewardbench2"]["Math"] == 0.5
    assert out["rewardbench2"]["Ties"] == pytest.approx(0.545)  # test_ties_formula_by_hand
    assert out["rewardbench2"]["Overall"] == pytest.approx((1.0 + 0.5 + 0.545) / 3)
    assert out["rewardbench2_items"] == {"Factuality": 1, "Math": 1, "Ties": 4} and "item" not in metrics["groups"]


def test_pairwise_roll_up_needs_every_comparison_right():
    from nemo_thinkrm.data.benchmarks.rewardbench2 import extra_metrics

    items = {"Factuality/1": {"n": 3, "accuracy": 1.0}, "Factuality/2": {"n": 3, "accuracy": 2 / 3},
             "Math/3": {"n": 6, "accuracy": 1.0}, "AVG (per-sample)": {"n": 12, "accuracy": 0.83}}
    metrics = {"groups": {"item": items, "section": {}}}
    out = extra_metrics(metrics)
    assert out["rewardbench2"] == {"Factuality": 0.5, "Math": 1.0, "Overall": 0.75}
    assert out["rewardbench2_items"] == {"Factuality": 2, "Math": 1}
    assert "item" not in metrics["groups"]  # no 1,900-row table in the report
