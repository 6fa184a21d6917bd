"""GRAM-R²'s pseudo-label filter, checked by hand: votes over seeds and both orders."""

import pytest

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.genrm.pseudo_labels import pseudo_label
from nemo_thinkrm.genrm.verdict import INVALID, Verdict

A, B = Verdict(label="A", strength=None, valid=True), Verdict(label="B", strength=None, valid=True)


def test_votes_in_both_orders_by_hand():
    # x better in every verdict: "A" when shown as is, "B" when swapped (y shown as A)
    p = pseudo_label([A, A, A], [B, B, B], min_agreement=0.75)
    assert (p.label, p.agreement, p.consistent, p.votes, p.kept) == ("A", 1.0, True, 6, True)
    # y better: 5 of 6 verdicts say so (one swapped vote for x) -> 5/6 >= 0.75, both orders' majority y
    p = pseudo_label([B, B, B], [A, A, B], min_agreement=0.75)
    assert (p.label, p.consistent) == ("B", True) and p.agreement == pytest.approx(5 / 6)
    # the same votes under a stricter threshold: confident enough for 0.8, not for 0.9
    assert pseudo_label([B, B, B], [A, A, B], min_agreement=0.8).kept
    assert not pseudo_label([B, B, B], [A, A, B], min_agreement=0.9).kept


def test_a_judge_that_follows_the_position_is_never_kept():
    # always "A": x in the first order, y in the second -> overall a tie, no label
    p = pseudo_label([A, A, A], [A, A, A], min_agreement=0.6)
    assert (p.label, p.consistent, p.agreement) == (None, False, 0.0)
    # mostly "A": overall x (4 of 6) but the swapped order's own majority is y -> inconsistent
    p = pseudo_label([A, A, A], [A, A, B], min_agreement=0.6)
    assert (p.label, p.consistent) == (None, False) and p.agreement == pytest.approx(4 / 6)


def test_unreadable_verdicts_count_against_confidence():
    # 4 of 6 readable, all for x: consistent, but the agreement is 4/6 of all verdicts
    p = pseudo_label([A, A, INVALID], [B, B, INVALID], min_agreement=0.75)
    assert (p.label, p.consistent) == (None, True) and p.agreement == pytest.approx(4 / 6)
    assert pseudo_label([A, A, INVALID], [B, B, INVALID], min_agreement=0.6).label == "A"
    # nothing readable: no majority at all
    p = pseudo_label([INVALID], [INVALID], min_agreement=0.6)
    assert (p.label, p.agreement, p.consistent) == (None, 0.0, False)


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(ConfigError, match="min_agreement"):
        pseudo_label([A], [B], min_agreement=0.5)
    with pytest.raises(ConfigError, match="both orders"):
        pseudo_label([A], [], min_agreement=0.8)
