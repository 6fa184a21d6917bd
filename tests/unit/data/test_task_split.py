"""The quickstart's judging task (``data/synthetic.py: make_task_split``): held-out (question, wrong
value) combinations never in training, in either order, and wrong values off by 1..max_offset."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.data.synthetic import make_task_split


def _combo(pair):
    a, b = map(int, re.findall(r"\d+", pair.question))
    values = {int(re.search(r"= (-?\d+)", r).group(1)) for r in (pair.response_a, pair.response_b)}
    (wrong,) = values - {a + b}
    return a, b, wrong


@pytest.mark.parametrize("max_offset", [3, 9])
def test_offsets_and_held_out_combinations(max_offset):
    train, held = make_task_split(9, 3000, 200, seed=0, max_offset=max_offset)
    offsets = Counter(w - a - b for a, b, w in map(_combo, train + held))
    # every offset 1..max_offset in both directions occurs (a negative one only where the value stays >= 0)
    assert set(offsets) == {d for k in range(1, max_offset + 1) for d in (-k, k)}
    assert all(w >= 0 for _, _, w in map(_combo, train + held))
    held_combos = {_combo(p) for p in held}
    assert len(held_combos) == 200 and not held_combos & {_combo(p) for p in train}
    # distinct combinations a question is trained on: ~4 at offsets 1-3, ~14 at 1-9 (200 held out)
    per_question = Counter((a, b) for a, b, _ in {_combo(p) for p in train})
    assert sum(per_question.values()) / len(per_question) > (3.5 if max_offset == 3 else 12)


def test_default_task_is_the_one_measured_before_max_offset_and_bad_offset_refused():
    # the pairs make_task_split drew before it took max_offset (2026-12-07, the same seed): every
    # quickstart number measured before then is on this task
    train, held = make_task_split(9, 50, 20, seed=1)
    assert [(p.response_a, p.response_b) for p in train[:4]] == [
        ("7 + 5 = 12.", "7 + 5 = 15."), ("6 + 4 = 10.", "6 + 4 = 13."), ("2 + 5 = 10.", "2 + 5 = 7."),
        ("0 + 5 = 4.", "0 + 5 = 5.")]
    assert [(p.response_a, p.response_b) for p in held[:2]] == [
        ("2 + 5 = 5.", "2 + 5 = 7."), ("2 + 4 = 3.", "2 + 4 = 6.")]
    with pytest.raises(ConfigError, match="max_offset must be >= 1, got 0"):
        make_task_split(9, 50, 20, max_offset=0)
