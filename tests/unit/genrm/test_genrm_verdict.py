"""Strict verdict parsing: Think-RM's rules, one case per rule, exact results."""

import pytest

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.genrm.verdict import (
    INVALID,
    Verdict,
    flip_verdict,
    last_answer_block,
    order_corrected,
    parse_verdict,
    strength_to_label,
)


def binary(label):
    return Verdict(label=label, strength=None, valid=True)


def multi(strength):
    return Verdict(label="A" if strength < 0 else "B", strength=strength, valid=True)


@pytest.mark.parametrize("text, expected", [
    ("<answer>A</answer>", binary("A")),
    ("<answer>B</answer>", binary("B")),
    ("first <answer>A</answer> then <answer>B</answer>", binary("B")),       # last block wins
    ("<answer>B</answer> changed my mind <answer>A</answer>", binary("A")),
    ("<answer>\n   B \n\t</answer>", binary("B")),                          # whitespace / newlines
    ("<answer>[[B]]</answer>", binary("B")),
    ("<answer>Response B</answer>", binary("B")),
    ("<answer>Response A is better</answer>", binary("A")),
    ("<answer>A or B? B</answer>", binary("B")),                           # last standalone letter
    ("<answer>A</answer> trailing text mentioning B", binary("A")),        # text after is ignored
    ("<answer>A</answer>\n<answer>", binary("A")),                         # unclosed trailing opener ignored
    ("<answer>a</answer>", INVALID),                                        # lowercase not accepted
    ("<answer>AB</answer>", INVALID),                                       # not a standalone token
    ("<answer></answer>", INVALID),                                         # empty block
    ("<answer>  \n </answer>", INVALID),
    ("The answer is A", INVALID),                                           # no block
    ("<answer>A", INVALID),                                                 # unclosed block
    ("A</answer>", INVALID),                                                # no opening tag
    ("<Answer>A</Answer>", INVALID),                                        # tags are case-sensitive
    ("", INVALID),
])
def test_binary_parse(text, expected):
    assert parse_verdict(text, "binary") == expected


@pytest.mark.parametrize("text, expected", [
    ("<answer>-3</answer>", multi(-3)),
    ("<answer>-2</answer>", multi(-2)),
    ("<answer>+2</answer>", multi(2)),
    ("<answer>3</answer>", multi(3)),
    ("<answer>\n 1\n</answer>", multi(1)),
    ("<answer>1</answer> ... <answer>-1</answer>", multi(-1)),
    ("<answer>score: -2</answer> and later 3", multi(-2)),
    ("<answer>2 or maybe -3</answer>", multi(-3)),                          # last integer
    ("<answer>-0</answer>", INVALID),
    ("<answer>0</answer>", INVALID),
    ("<answer>5</answer>", INVALID),
    ("<answer>-4</answer>", INVALID),
    ("<answer>2.5</answer>", INVALID),
    ("<answer>B</answer>", INVALID),                                        # a letter is not a strength
    ("<answer>-2", INVALID),
    ("no block -2", INVALID),
])
def test_multiclass_parse(text, expected):
    assert parse_verdict(text, "multiclass") == expected


def test_multiclass_label_follows_sign():
    assert parse_verdict("<answer>-1</answer>", "multiclass").label == "A"
    assert parse_verdict("<answer>+3</answer>", "multiclass").label == "B"
    assert strength_to_label(-2) == "A"
    assert strength_to_label(1) == "B"


def test_last_block_is_searched_backwards_from_last_close():
    assert last_answer_block("<answer>x <answer>B</answer>") == "B"
    assert last_answer_block("<answer>A</answer> <answer>B") == "A"
    assert last_answer_block("nothing") is None


def test_flip_and_order_correction():
    assert flip_verdict(binary("A")) == binary("B")
    assert flip_verdict(multi(-2)) == multi(2)
    assert flip_verdict(INVALID) == INVALID
    assert order_corrected(multi(3), swapped=True) == multi(-3)
    assert order_corrected(multi(3), swapped=False) == multi(3)


def test_bad_inputs_raise():
    with pytest.raises(ConfigError, match="unknown verdict mode"):
        parse_verdict("<answer>A</answer>", "ternary")
    with pytest.raises(TypeError):
        parse_verdict(None, "binary")
    with pytest.raises(ValueError):
        Verdict(label="C", strength=None, valid=True)
    with pytest.raises(ValueError):
        Verdict(label="A", strength=2, valid=True)   # sign disagrees with label
    with pytest.raises(ConfigError):
        strength_to_label(0)
