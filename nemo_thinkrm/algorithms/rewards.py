"""Rule-based rewards for a judge's generated text (``config/registry.py: REWARDS`` names them).

Every reward has one signature::

    reward(output_text: str, label, *, mode: str, **kwargs) -> float

``label`` is the ground truth in the orientation the judge saw ("A"/"B" or a
signed strength −3..3 without 0), ``mode`` is the verdict mode the template
asked for ("binary" or "multiclass"); extra keyword arguments (``n_tokens``,
``target``, …) are passed to every reward and ignored by those that do not
need them, so rewards can be combined freely with ``combine``.

Reproducing Think-RM: its rule-based GRPO stage uses the accuracy reward
alone, with no format reward — "binary" (1 right, 0 wrong or invalid) or
"multiclass" (1 exact strength, 0.5 right sign, 0 otherwise/invalid). So
``REWARDS.get("binary")`` / ``REWARDS.get("multiclass")`` alone reproduce the
paper; "format_bonus" and "length_penalty" are optional shaping examples.

The verdict rules are not re-implemented here: parsing is
``genrm.verdict.parse_verdict`` and scoring is ``genrm.scoring.binary_reward`` /
``multiclass_reward``, the same definitions the offline evaluator uses.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Optional, Protocol

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.registry import REWARDS
from nemo_thinkrm.genrm.scoring import Label, binary_reward, multiclass_reward
from nemo_thinkrm.genrm.verdict import CLOSE_TAG, OPEN_TAG, check_mode, check_strength, parse_verdict

THINK_CLOSE_TAG = "</think>"


class RewardFn(Protocol):
    """The one reward signature (see module doc)."""

    def __call__(self, output_text: str, label: Label, *, mode: str, **kwargs: Any) -> float: ...


def binary(output_text: str, label: Label, *, mode: str, **kwargs: Any) -> float:
    """1.0 when the final verdict prefers the labelled response, 0.0 when wrong or invalid.

    Works in both modes: a multiclass verdict/label is compared on its sign.
    """
    return binary_reward(parse_verdict(output_text, check_mode(mode)), label)


def multiclass(output_text: str, label: Label, *, mode: str, **kwargs: Any) -> float:
    """1.0 exact strength, 0.5 right sign only, 0.0 otherwise or invalid.

    Needs ``mode="multiclass"`` and an int strength label: a binary verdict has
    no strength to compare, so a mode mismatch is a config error, not a 0.5.
    """
    if check_mode(mode) != "multiclass":
        raise ConfigError(f"the 'multiclass' reward needs mode='multiclass', got mode={mode!r}")
    if isinstance(label, str):
        raise ConfigError(f"the 'multiclass' reward needs a signed strength label, got {label!r}")
    return multiclass_reward(parse_verdict(output_text, mode), check_strength(label))


def _last_block_start(text: str) -> Optional[int]:
    """Index of the ``<answer>`` opening the last complete block (same rule as the parser)."""
    end = text.rfind(CLOSE_TAG)
    if end < 0:
        return None
    start = text.rfind(OPEN_TAG, 0, end)
    return None if start < 0 else start


def format_bonus(output_text: str, label: Label, *, mode: str, **kwargs: Any) -> float:
    """1.0 for a well-formed "think, then answer" output with a readable verdict, else 0.0.

    Well-formed means: the text contains exactly one ``</think>`` and it lies
    before the last complete ``<answer>…</answer>`` block, and that block
    parses to a valid verdict. The label is not used (format, not correctness).
    Not part of Think-RM's reward; an example shaping term for ``combine``.
    """
    if not parse_verdict(output_text, check_mode(mode)).valid:
        return 0.0
    start = _last_block_start(output_text)
    if start is None or output_text.count(THINK_CLOSE_TAG) != 1:
        return 0.0
    return 1.0 if output_text.find(THINK_CLOSE_TAG) + len(THINK_CLOSE_TAG) <= start else 0.0


def length_penalty(output_text: str, label: Label, *, mode: str, n_tokens: Optional[int] = None,
                   target: Optional[int] = None, **kwargs: Any) -> float:
    """−min(1, max(0, n_tokens − target) / target): 0 up to ``target`` tokens, −1 at twice it.

    Linear in the overshoot so the gradient signal is smooth, capped at −1 so
    one runaway generation cannot dominate a weighted sum. ``n_tokens`` (the
    judge output length) and ``target`` (> 0) must be given as keywords.
    """
    if n_tokens is None or target is None:
        raise ConfigError("the 'length_penalty' reward needs keyword arguments n_tokens and target")
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not target > 0:
        raise ConfigError(f"length_penalty target must be a positive number, got {target!r}")
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, (int, float)) or n_tokens < 0:
        raise ConfigError(f"length_penalty n_tokens must be a non-negative number, got {n_tokens!r}")
    return -min(1.0, max(0.0, n_tokens - target) / target)


def overlong_penalty(output_text: str, label: Label, *, mode: str, n_tokens: Optional[int] = None,
                     max_new_tokens: Optional[int] = None, overlong_window: Optional[int] = None,
                     **kwargs: Any) -> float:
    """DAPO's soft overlong punishment (Yu et al. 2025, arXiv:2503.14476, eq. 13), L = max_new_tokens,
    W = overlong_window: 0 up to L − W tokens, then linear down to −1 at L (a sample cut at the
    limit), −1 past it. Add it to the verdict reward (``reward_weights``) so a judge learns to
    conclude before it is cut off instead of being scored 0 for a missing verdict."""
    for name, value in (("n_tokens", n_tokens), ("max_new_tokens", max_new_tokens),
                        ("overlong_window", overlong_window)):
        if value is None:
            raise ConfigError(f"the 'overlong_penalty' reward needs {name} (reward_options.{name} for the window)")
    if isinstance(overlong_window, bool) or not 0 < overlong_window <= max_new_tokens:
        raise ConfigError(f"overlong_window must be in 1..max_new_tokens={max_new_tokens}, got {overlong_window!r}")
    free = max_new_tokens - overlong_window
    if n_tokens <= free:
        return 0.0
    return max(-1.0, (free - n_tokens) / overlong_window)


def combine(spec: Mapping[str, float]) -> Callable[..., float]:
    """A reward that is the weighted sum Σ_name weight · REWARDS[name](…) of registered rewards.

    Example: ``combine({"binary": 1.0, "format_bonus": 0.1})``. Names and
    weights are checked now, so a typo fails when the config is read rather
    than after the first rollout. The result has the common reward signature
    and forwards all keyword arguments to every term.
    """
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError(f"combine needs a non-empty {{reward name: weight}} mapping, got {spec!r}")
    terms: list[tuple[str, float, RewardFn]] = []
    for name, weight in spec.items():
        fn = REWARDS.get(name)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ConfigError(f"reward weight for {name!r} must be a finite number, got {weight!r}")
        terms.append((name, float(weight), fn))

    def combined(output_text: str, label: Label, *, mode: str, **kwargs: Any) -> float:
        return float(sum(w * fn(output_text, label, mode=mode, **kwargs) for _, w, fn in terms))

    combined.__doc__ = "Weighted reward: " + " + ".join(f"{w}*{n}" for n, w, _ in terms)
    combined.needs_partner = any(getattr(fn, "needs_partner", False) for _, _, fn in terms)
    return combined


# ------------------------------------------------------------------ both orders of a pair in one group (J1)

def consistent(output_text: str, label: Label, *, mode: str, partner: Optional[tuple] = None, **kwargs: Any) -> float:
    """J1's position-consistent reward (Whitehouse et al. 2025, arXiv:2505.10320): 1.0 only when this
    verdict and its partner's (the same pair judged in the other order, which the reward source passes
    as ``partner=(text, label)`` under ``swap=both``) both prefer the labelled response, so a judge
    that follows the position earns nothing. Compared on the sign in either mode, as ``binary``."""
    if partner is None:
        raise ConfigError("the 'consistent' reward needs swap=both (a pair's two orders in one group)")
    return binary(output_text, label, mode=mode) * binary(partner[0], partner[1], mode=mode)


consistent.needs_partner = True  # the reward source checks this against its layout before any rollout


def order_pairs(values, group_size: int):
    """``[P, G]`` per-sample values → ``[P, G/2, 2]``: samples 2k and 2k+1 of a group judged the same pair
    in its two orders (``swap=both`` in GRPO lays a group out so)."""
    if group_size % 2:
        raise ConfigError(f"both orders in one group need an even group_size, got {group_size}")
    return values.view(values.shape[0], group_size // 2, 2)


def position_consistency(correct, valid) -> float:
    """The share of order pairs whose two verdicts are valid and name the same response (both right or
    both wrong: a verdict that follows the position flips between the orders)."""
    G = correct.shape[1]
    c, v = order_pairs(correct.bool(), G), order_pairs(valid.bool(), G)
    return float((v.all(-1) & (c[..., 0] == c[..., 1])).float().mean())
