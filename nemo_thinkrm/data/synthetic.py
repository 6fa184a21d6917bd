"""The embedded default task: a small, *learnable*, verifiable judging problem.

Each example asks which of two responses gives the right result of a small
arithmetic question; exactly one is right. A scripted teacher writes the
reasoning trace a good judge would (recompute, compare each response, conclude),
so the quickstart can run SFT → GRPO without any external model or data, and the
answer is checkable by rule. The scripted teacher is a stand-in for Think-RM's
strong-LLM teacher, and is labelled as such in the quickstart report.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Optional

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.genrm import load_template


@dataclass(frozen=True)
class ArithmeticPair:
    id: str
    question: str
    response_a: str
    response_b: str
    label: str
    """"A" or "B": which response is right."""
    trace: str
    """Teacher reasoning + verdict, the text after the ``<think>\\n`` opener."""


_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def _offsets(max_offset: int) -> list[int]:
    """How far a wrong answer may be from the right one: ±1..±max_offset, in ascending order."""
    if max_offset < 1:
        raise ConfigError(f"max_offset must be >= 1, got {max_offset}")
    return sorted(d for k in range(1, max_offset + 1) for d in (-k, k))


def _value(text: str) -> Optional[int]:
    m = re.search(r"=\s*(-?\d+)", text)
    return int(m.group(1)) if m else None


def scripted_trace(a: int, op: str, b: int, shown_a: str, shown_b: str) -> str:
    """The scripted teacher's reasoning for the responses *as shown* (A/B after any swap).

    Each claim is checked by subtracting the recomputed result ("10 - 11 = -1, wrong"):
    a small judge learns subtraction facts as easily as the addition facts, while a bare
    "10 vs 11: differ" equality test between neighbouring numbers is what it learns
    worst. The verdict then follows from whether a difference is 0.
    """
    right = _OPS[op](a, b)
    val_a, val_b = _value(shown_a), _value(shown_b)
    label = "A" if val_a == right else "B"

    def check(name: str, value: Optional[int]) -> str:
        if value is None:
            return f"{name} gives no result, wrong."
        return f"{name} says {value}; {value} - {right} = {value - right}, {'right' if value == right else 'wrong'}."

    return (f"{a} {op} {b} = {right}.\n{check('A', val_a)}\n{check('B', val_b)}\nSo {label} is right.\n"
            f"</think>\n<answer>{label}</answer>")


WORDINGS = ("short", "explained")
"""How responses read: "short" ("7 + 5 = 12.", one tiny-BPE token per number) or "explained" (a few
sentences of working around the same claim: prompts of real length for real models)."""

_OPENERS = ("Let me work this out step by step.", "Sure, here is how to compute it.",
            "We can solve this by adding the two numbers.", "To answer, I will add the numbers carefully.")
_STEPS = ("First I add the ones, then the tens, carrying where a column reaches ten.",
          "Starting from the larger number, I count on by the smaller one.",
          "Splitting each number into tens and ones makes the sum easier to check.",
          "Adding in columns keeps each digit in its place.")
_CLOSERS = ("So the final answer is {v}.", "Therefore the result is {v}.", "The answer is {v}.",
            "That gives {v} in total.")


def response_text(a: int, op: str, b: int, value: int, wording: str, rng: random.Random) -> str:
    """A response claiming ``a op b = value``; its first ``= v`` is the claim (``_value`` reads it)."""
    if wording == "short":
        return f"{a} {op} {b} = {value}."
    if wording != "explained":
        raise ConfigError(f"wording={wording!r} is not one of {list(WORDINGS)}")
    return (f"{rng.choice(_OPENERS)} {rng.choice(_STEPS)} Here {a} {op} {b} = {value}. "
            f"{rng.choice(_STEPS)} {rng.choice(_CLOSERS).format(v=value)}")


def make_arithmetic_pairs(n: int, seed: int = 0, max_operand: int = 12, ops: str = "+",
                          wording: str = "short") -> list[ArithmeticPair]:
    """``n`` judging pairs; the wrong response is off by 1-3 and never negative when the
    right result is not (so every value of the default task is one tiny-BPE token)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(0, max_operand), rng.randint(0, max_operand)
        op = rng.choice(sorted(ops))
        right = _OPS[op](a, b)
        offsets = [d for d in _offsets(3) if right < 0 or right + d >= 0]
        wrong = right + rng.choice(offsets)
        out.append(_pair(f"arith-{seed}-{i}", a, op, b, wrong, rng.choice("AB"), wording, rng))
    return out


def _pair(pair_id: str, a: int, op: str, b: int, wrong: int, label: str, wording: str = "short",
          rng: Optional[random.Random] = None) -> ArithmeticPair:
    right = _OPS[op](a, b)
    val_a, val_b = (right, wrong) if label == "A" else (wrong, right)
    rng = rng or random.Random(pair_id)
    resp_a, resp_b = (response_text(a, op, b, v, wording, rng) for v in (val_a, val_b))
    return ArithmeticPair(pair_id, f"What is {a} {op} {b}?", resp_a, resp_b, label,
                          scripted_trace(a, op, b, resp_a, resp_b))


def make_task_split(max_operand: int, n_train: int, n_heldout: int, seed: int = 0, wording: str = "short",
                    max_offset: int = 3) -> tuple[list[ArithmeticPair], list[ArithmeticPair]]:
    """The quickstart's task: "a + b" pairs split so no held-out pair occurs in training.

    Every distinct (question, wrong value) is enumerated; ``n_heldout`` of them are set
    aside (in either A/B order, so an evaluation's own order swap cannot leak them) and
    the ``n_train`` training pairs are drawn with repetition from the rest. The
    arithmetic facts are shared (each question is seen with other wrong values), so
    held-out accuracy measures judging new pairs, not recalling seen ones.

    The wrong value is off by 1..``max_offset`` (3: the policy's mistakes are as close). Far-off
    wrong values are easy for the tiny judge, so a larger ``max_offset`` raises held-out accuracy
    without making it better on close ones (docs/grpo.md, 2026-12-08).
    """
    combos = [(a, b, a + b + d) for a in range(max_operand + 1) for b in range(max_operand + 1)
              for d in _offsets(max_offset) if a + b + d >= 0]
    if n_heldout >= len(combos):
        raise ConfigError(f"heldout_pairs={n_heldout} leaves no training pairs: the task has only {len(combos)} "
                          "distinct (question, wrong answer) pairs (raise max_operand)")
    rng = random.Random(seed)
    rng.shuffle(combos)
    held, rest = combos[:n_heldout], combos[n_heldout:]
    heldout = [_pair(f"heldout-{i}", a, "+", b, w, rng.choice("AB"), wording, rng) for i, (a, b, w) in enumerate(held)]
    train = [_pair(f"train-{i}", a, "+", b, w, rng.choice("AB"), wording, rng)
             for i, (a, b, w) in enumerate(rng.choice(rest) for _ in range(n_train))]
    return train, heldout


def judge_messages(pair: ArithmeticPair) -> list[dict[str, str]]:
    """The judge prompt for a pair, rendered with the ``compact_binary`` template exactly as
    ``synth``/``eval``/``grpo`` render it (the A/B order is the pair's own, no swap)."""
    prompt = load_template("compact_binary").render([{"role": "user", "content": pair.question}],
                                                    pair.response_a, pair.response_b)
    return [{"role": "user", "content": prompt}]


def make_answer_records(n: int, seed: int, max_operand: int = 12, error_rate: float = 0.5,
                        max_offset: int = 3) -> list[dict]:
    """SFT records for a tiny *policy*: "What is a + b?" → "a + b = v.". Each question has one wrong
    answer (off by 1..``max_offset``) and its own rate of giving it, drawn uniformly from
    [0, 2 × ``error_rate``] (capped at 1), so the policy knows some sums, is shaky on others and mostly wrong on a few:
    mistakes a judge can see and pairwise RLHF can fix. (A fresh random mistake per record, as
    before 2026-12-07, left the policy flat over answers, and its greedy answers then moved by
    noise under RL: docs/pairwise_rlhf.md.)"""
    rng = random.Random(seed)
    questions = [(a, b) for a in range(max_operand + 1) for b in range(max_operand + 1)]
    mistakes = {q: (sum(q) + rng.choice([d for d in _offsets(max_offset) if sum(q) + d >= 0]),
                    min(1.0, rng.uniform(0, 2 * error_rate))) for q in questions}
    out = []
    for i in range(n):
        a, b = rng.choice(questions)
        wrong, rate = mistakes[a, b]
        value = wrong if rng.random() < rate else a + b
        out.append({"id": f"answer-{seed}-{i}", "messages": [
            {"role": "user", "content": f"What is {a} + {b}?"},
            {"role": "assistant", "content": f"{a} + {b} = {value}."}]})
    return out


def answer_is_right(question: str, answer: str) -> bool:
    """Rule check of a policy answer: the first ``= v`` in it equals the question's result."""
    q = re.search(r"What is (-?\d+) ([+\-*]) (-?\d+)\?", question)
    if q is None:
        return False
    value = _value(answer)
    return value is not None and value == _OPS[q.group(2)](int(q.group(1)), int(q.group(3)))


def write_preference_jsonl(pairs: list[ArithmeticPair], path) -> None:
    """The pairs in the ``generic`` adapter's schema (prompt, response_a, response_b, label)."""
    import json
    from pathlib import Path

    Path(path).write_text("".join(json.dumps({"id": p.id, "prompt": p.question, "response_a": p.response_a,
                                               "response_b": p.response_b, "label": p.label}) + "\n"
                                  for p in pairs))


def make_candidate_sets(n: int, k: int = 4, seed: int = 0, max_operand: int = 12) -> list[dict]:
    """``n`` best-of-``k`` items of the embedded task: "What is a + b?" with the right answer first
    and ``k − 1`` distinct wrong ones (off by 1-3, never negative); ``best`` = 0 (``thinkrm best-of-n``
    shows them in a seeded order, so a judge cannot win by position)."""
    if not 2 <= k <= 4:  # 0 + 0 has only three wrong answers 1-3 away that are not negative
        raise ConfigError(f"a candidate set of the arithmetic task holds 2..4 responses, got {k}")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(0, max_operand), rng.randint(0, max_operand)
        right = a + b
        wrong = rng.sample([right + d for d in (-3, -2, -1, 1, 2, 3) if right + d >= 0], k - 1)
        out.append({"id": f"bon-{seed}-{i}", "prompt": f"What is {a} + {b}?",
                    "responses": [f"{a} + {b} = {v}." for v in [right, *wrong]], "best": 0})
    return out
