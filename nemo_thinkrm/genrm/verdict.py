"""Strict parsing of a judge's verdict from its generated text.

Think-RM scores a generation only by its final ``<answer>…</answer>`` block, so a
model that reasons about "Response A" and then changes its mind is judged by what
it finally commits to. The parser is deliberately strict (case-sensitive tags,
uppercase letters, a closed block): anything a human would have to guess at is
*invalid*, and the metrics decide how to count invalid outputs (strict 0,
flexible 0.5) instead of the parser silently guessing.

Rules (Think-RM's published rules):

* The verdict is read from the LAST complete block: the text between the last
  ``</answer>`` and the nearest ``<answer>`` before it. Text after that closing
  tag is ignored; an opening tag without a closing tag after it (a truncated
  generation) is not a block.
* binary: the last standalone uppercase ``A`` or ``B`` token in the block
  (``"A"``, ``"[[B]]"``, ``"Response A"``); a lowercase ``a`` is not accepted.
* multiclass: the last integer token in the block (an optional ``+``/``-`` sign
  directly before the digits); it must lie in −3..3 and not be 0 (so ``"-0"``,
  ``"0"`` and ``"5"`` are invalid). Negative means response A is better,
  positive means B is better, the magnitude is the strength.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Optional

from nemo_thinkrm.config.errors import ConfigError

Mode = Literal["binary", "multiclass"]
MODES: tuple[str, ...] = ("binary", "multiclass")

OPEN_TAG = "<answer>"
CLOSE_TAG = "</answer>"
MAX_STRENGTH = 3

# A standalone uppercase A/B: not glued to letters, digits or underscores, so
# "Response A" and "[[B]]" count but "AB", "Alpha" or "B2" do not.
_BINARY_TOKEN = re.compile(r"(?<![A-Za-z0-9_])([AB])(?![A-Za-z0-9_])")
# An integer token with an optional sign directly in front. The look-behind
# refuses tokens glued to words, digits, dots or another sign ("x-2", "2.5",
# "--1"); the look-ahead refuses "2.5" and "2nd".
_INT_TOKEN = re.compile(r"(?<![\w.+\-])([+\-]?\d+)(?![\w.])")


@dataclass(frozen=True)
class Verdict:
    """What a judge finally said about a pair, in the orientation it was shown.

    ``label`` is "A"/"B" (the preferred response) or None when invalid;
    ``strength`` is the signed multiclass score (−3..3, no 0) or None in binary
    mode; ``valid`` is False when no verdict could be read. ``tie`` marks a judge
    that answered "neither" on purpose: a reward model whose two scores are equal.
    It prefers no response (label None, not valid) but is no failure: it scores
    0.5 and is not counted as invalid. Text never parses to a tie, so a generative
    judge's unreadable answer stays invalid under Think-RM's rules.
    """

    label: Optional[str]
    strength: Optional[int]
    valid: bool
    tie: bool = False

    def __post_init__(self) -> None:
        # Guard the invariants here so every downstream metric can rely on them.
        if self.valid:
            if self.label not in ("A", "B"):
                raise ValueError(f"a valid verdict needs label 'A' or 'B', got {self.label!r}")
            if self.strength is not None and strength_to_label(self.strength) != self.label:
                raise ValueError(f"strength {self.strength} disagrees with label {self.label!r}")
            if self.tie:
                raise ValueError("a tie prefers no response, so it is not a valid A/B verdict")
        elif self.label is not None or self.strength is not None:
            raise ValueError("an invalid verdict carries neither label nor strength")


INVALID = Verdict(label=None, strength=None, valid=False)
TIE = Verdict(label=None, strength=None, valid=False, tie=True)


def check_mode(mode: str) -> Mode:
    """Return ``mode`` if it is "binary" or "multiclass", else raise ConfigError."""
    if mode not in MODES:
        raise ConfigError(f"unknown verdict mode {mode!r}; expected one of {list(MODES)}")
    return mode  # type: ignore[return-value]


def check_strength(strength: int) -> int:
    """Return a signed strength if it is an int in −3..3 other than 0, else raise.

    bool is refused although it is an int: ``True`` as a strength is a bug.
    """
    if isinstance(strength, bool) or not isinstance(strength, int) \
            or strength == 0 or abs(strength) > MAX_STRENGTH:
        raise ConfigError(f"a multiclass strength must be an int in -3..3 other than 0, got {strength!r}")
    return strength


def strength_to_label(strength: int) -> str:
    """Collapse a signed strength to the binary label: negative → "A", positive → "B"."""
    return "A" if check_strength(strength) < 0 else "B"


def last_answer_block(text: str) -> Optional[str]:
    """Content of the last complete ``<answer>…</answer>`` block, or None.

    Searching backwards from the last closing tag (rather than a left-to-right
    non-greedy regex) makes "the last block" unambiguous even when a stray
    opening tag appears earlier inside the same block.
    """
    end = text.rfind(CLOSE_TAG)
    if end < 0:
        return None
    start = text.rfind(OPEN_TAG, 0, end)
    if start < 0:
        return None
    return text[start + len(OPEN_TAG):end]


def _parse_binary(block: str) -> Verdict:
    tokens = _BINARY_TOKEN.findall(block)
    if not tokens:
        return INVALID
    return Verdict(label=tokens[-1], strength=None, valid=True)


def _parse_multiclass(block: str) -> Verdict:
    tokens = _INT_TOKEN.findall(block)
    if not tokens:
        return INVALID
    value = int(tokens[-1])
    if value == 0 or abs(value) > MAX_STRENGTH:
        return INVALID
    return Verdict(label=strength_to_label(value), strength=value, valid=True)


def parse_verdict(text: str, mode: Mode) -> Verdict:
    """Read the verdict of one generation under Think-RM's strict rules (see module doc)."""
    check_mode(mode)
    if not isinstance(text, str):
        raise TypeError(f"parse_verdict expects the generated text as str, got {type(text).__name__}")
    block = last_answer_block(text)
    if block is None:
        return INVALID
    return _parse_binary(block) if mode == "binary" else _parse_multiclass(block)


def flip_verdict(verdict: Verdict) -> Verdict:
    """The same judgement expressed with A and B exchanged (strength negated).

    Used to map a verdict given on the swapped prompt back to the original
    orientation; invalid stays invalid.
    """
    if not verdict.valid:
        return verdict
    label = "B" if verdict.label == "A" else "A"
    strength = None if verdict.strength is None else -verdict.strength
    return Verdict(label=label, strength=strength, valid=True)


def order_corrected(verdict: Verdict, swapped: bool) -> Verdict:
    """Map a verdict to the original orientation (chosen shown as A).

    ``swapped`` is the flag ``render_pair`` returned for the prompt the verdict
    answered: True means the chosen response was shown as B.
    """
    return flip_verdict(verdict) if swapped else verdict
