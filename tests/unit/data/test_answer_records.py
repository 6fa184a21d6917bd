"""The tiny policy's SFT data (``data/synthetic.py: make_answer_records``): mistakes of its own per
question, so the SFT policy has a clear answer per question (right on most, wrong on some) that a
judge can correct, instead of being flat over answers (docs/pairwise_rlhf.md)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from nemo_thinkrm.data.synthetic import answer_is_right, make_answer_records


def _answers(rows):
    per_q = defaultdict(Counter)
    for r in rows:
        q, a = r["messages"][0]["content"], r["messages"][1]["content"]
        per_q[q][int(re.search(r"= (-?\d+)\.$", a).group(1))] += 1
    return per_q


def test_one_wrong_answer_per_question_at_its_own_rate():
    rows = make_answer_records(20000, seed=3, max_operand=9, error_rate=0.35)
    per_q = _answers(rows)
    assert len(per_q) == 100  # every question of 0..9 + 0..9
    wrong_shares = []
    for q, counts in per_q.items():
        a, b = map(int, re.search(r"What is (\d+) \+ (\d+)\?", q).groups())
        wrong = {v: n for v, n in counts.items() if v != a + b}
        assert len(wrong) <= 1  # the same mistake every time
        for v in wrong:
            assert 1 <= abs(v - (a + b)) <= 3 and v >= 0
        wrong_shares.append(sum(wrong.values()) / sum(counts.values()))
    # rates uniform in [0, 0.7]: mean ~0.35, some questions mostly wrong, some nearly always right
    assert abs(sum(wrong_shares) / 100 - 0.35) < 0.06
    mostly_wrong = sum(s > 0.5 for s in wrong_shares)
    assert 15 <= mostly_wrong <= 45 and sum(s < 0.1 for s in wrong_shares) >= 5
    # the rule check agrees with the records' own sums
    right = sum(answer_is_right(r["messages"][0]["content"], r["messages"][1]["content"]) for r in rows)
    assert abs(right / len(rows) - (1 - sum(wrong_shares) / 100)) < 0.02


def test_error_rate_zero_and_seeded():
    assert all(answer_is_right(r["messages"][0]["content"], r["messages"][1]["content"])
               for r in make_answer_records(500, seed=0, max_operand=9, error_rate=0.0))
    assert make_answer_records(50, seed=1, max_operand=9) == make_answer_records(50, seed=1, max_operand=9)
