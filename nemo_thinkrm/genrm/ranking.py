"""Ranking N > 2 responses with a pairwise judge (best-of-N, listwise output), or with scores.

A judge is a ``compare(i, j) -> float``: 1.0 when response ``i`` wins, 0.0 when ``j`` wins, 0.5 for
a tie or an unusable verdict (a failed request must not crown either side). Strategies:

* ``knockout``: a single-elimination bracket over a seeded shuffle, N − 1 comparisons; an odd
  response out gets a bye; a tie goes to the lower bracket position (deterministic). It finds the
  best response only if the judge is transitive enough; it never ranks the rest.
* ``all_pairs``: every unordered pair, optionally in both orders (2 comparisons per pair, the
  verdicts averaged, so position bias cancels), N(N−1)/2 or N(N−1) comparisons; Copeland ranking
  by win share (wins + ½ ties), ties broken by index. GRAM-R² and Think-RM's pairwise RLHF use
  such a win matrix.
* ``scores``: a reward model's scalar per response, ranked high to low (no comparisons).

Each returns a ``Ranking``: the order (best first), the winner, the comparisons it asked for, and
for ``all_pairs`` the win matrix.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

Compare = Callable[[int, int], float]
STRATEGIES = ("knockout", "all_pairs", "scores")


@dataclass
class Ranking:
    order: list[int]
    """Response indices, best first (knockout: the winner, then the rest in elimination order)."""
    comparisons: int
    wins: Optional[list[list[float]]] = None
    """``wins[i][j]``: share of ``i``'s verdicts against ``j`` that it won (all_pairs)."""
    bracket: list[tuple[int, int, int]] = field(default_factory=list)
    """(i, j, winner) of every knockout match, in order."""

    @property
    def winner(self) -> int:
        return self.order[0]


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError(f"need at least one response to rank, got {n}")


def knockout(n: int, compare: Compare, seed: int = 0) -> Ranking:
    _check_n(n)
    alive = list(range(n))
    random.Random(seed).shuffle(alive)
    out: list[int] = []
    bracket: list[tuple[int, int, int]] = []
    while len(alive) > 1:
        nxt = []
        for k in range(0, len(alive) - 1, 2):
            i, j = alive[k], alive[k + 1]
            w = i if compare(i, j) >= 0.5 else j
            bracket.append((i, j, w))
            nxt.append(w)
            out.append(j if w == i else i)
        if len(alive) % 2:
            nxt.append(alive[-1])  # bye
        alive = nxt
    return Ranking(order=alive + out[::-1], comparisons=len(bracket), bracket=bracket)


def all_pairs(n: int, compare: Compare, both_orders: bool = True) -> Ranking:
    _check_n(n)
    wins = [[0.0] * n for _ in range(n)]
    asked = 0
    for i in range(n):
        for j in range(i + 1, n):
            verdicts = [compare(i, j)]
            if both_orders:
                verdicts.append(1.0 - compare(j, i))
            asked += len(verdicts)
            share = sum(verdicts) / len(verdicts)
            wins[i][j], wins[j][i] = share, 1.0 - share
    total = [sum(row) for row in wins]
    order = sorted(range(n), key=lambda i: (-total[i], i))
    return Ranking(order=order, comparisons=asked, wins=wins)


def by_scores(scores: Sequence[float]) -> Ranking:
    _check_n(len(scores))
    return Ranking(order=sorted(range(len(scores)), key=lambda i: (-scores[i], i)), comparisons=0)


def rank(strategy: str, n: int, compare: Optional[Compare] = None, scores: Optional[Sequence[float]] = None,
         seed: int = 0, both_orders: bool = True) -> Ranking:
    """Dispatch by name; ``scores`` for the ``scores`` strategy, ``compare`` for the others."""
    if strategy == "scores":
        if scores is None:
            raise ValueError("strategy 'scores' needs a score per response (a reward model)")
        return by_scores(scores)
    if compare is None:
        raise ValueError(f"strategy {strategy!r} needs a pairwise judge")
    if strategy == "knockout":
        return knockout(n, compare, seed)
    if strategy == "all_pairs":
        return all_pairs(n, compare, both_orders)
    raise ValueError(f"unknown ranking strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
