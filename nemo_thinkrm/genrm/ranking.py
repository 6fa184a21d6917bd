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
* ``sort``: a merge sort with the judge as its comparator (GRAM-R²'s listwise use of a pairwise
  judge), each comparison asked in both orders and averaged, so position bias cancels; about
  2·N·log2(N) comparisons and a full ranking. A tie keeps the earlier response of a seeded shuffle.
* ``scores``: a reward model's scalar per response, ranked high to low (no comparisons).

Each returns a ``Ranking``: the order (best first), the winner, the comparisons it asked for, and
for ``all_pairs`` the win matrix.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

Compare = Callable[[int, int], float]
STRATEGIES = ("knockout", "all_pairs", "sort", "scores")


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


class Knockout:
    """A single-elimination bracket played one round at a time, so the rounds of many items can be
    sent to a judge as one batch (``rank_many``); ``knockout`` plays it with a synchronous judge."""

    def __init__(self, n: int, seed: int = 0) -> None:
        _check_n(n)
        self.alive = list(range(n))
        random.Random(seed).shuffle(self.alive)
        self.out: list[int] = []
        self.bracket: list[tuple[int, int, int]] = []

    def matches(self) -> list[tuple[int, int]]:
        """This round's (i, j) matches; empty once a winner is left."""
        return [(self.alive[k], self.alive[k + 1]) for k in range(0, len(self.alive) - 1, 2)]

    def record(self, verdicts: Sequence[float]) -> None:
        """``compare(i, j)`` of each match of ``matches()``, in order: winners go on, an odd one has a bye."""
        matches = self.matches()
        if len(verdicts) != len(matches):
            raise ValueError(f"{len(matches)} matches this round, got {len(verdicts)} verdicts")
        nxt = []
        for (i, j), v in zip(matches, verdicts):
            w = i if v >= 0.5 else j
            self.bracket.append((i, j, w))
            nxt.append(w)
            self.out.append(j if w == i else i)
        if len(self.alive) % 2:
            nxt.append(self.alive[-1])  # bye
        self.alive = nxt

    def result(self) -> Ranking:
        if len(self.alive) != 1:
            raise ValueError("the bracket is not finished")
        return Ranking(order=self.alive + self.out[::-1], comparisons=len(self.bracket), bracket=list(self.bracket))


def knockout(n: int, compare: Compare, seed: int = 0) -> Ranking:
    k = Knockout(n, seed)
    while matches := k.matches():
        k.record([compare(i, j) for i, j in matches])
    return k.result()


class MergeSort:
    """A bottom-up merge sort played one round at a time: each round asks one comparison (in both
    orders) per merge in progress, so the rounds of many items batch like a knockout's."""

    def __init__(self, n: int, seed: int = 0) -> None:
        _check_n(n)
        order = list(range(n))
        random.Random(seed).shuffle(order)
        self.runs: list[list[int]] = [[i] for i in order]
        self.merges: list[tuple[list[int], list[int], list[int]]] = []  # (left, right, merged so far)
        self.carry: Optional[list[int]] = None
        self.comparisons = 0
        self._start_level()

    def _start_level(self) -> None:
        """Pair up the runs into this level's merges; an odd run waits for the next level."""
        if len(self.runs) > 1:
            self.carry = self.runs[-1] if len(self.runs) % 2 else None
            self.merges = [(list(self.runs[k]), list(self.runs[k + 1]), []) for k in range(0, len(self.runs) - 1, 2)]

    def _active(self) -> list[tuple[list[int], list[int], list[int]]]:
        return [m for m in self.merges if m[0] and m[1]]

    def matches(self) -> list[tuple[int, int]]:
        """This round's matches: the heads of each unfinished merge's runs, in both orders; empty when sorted."""
        return [m for left, right, _ in self._active() for m in ((left[0], right[0]), (right[0], left[0]))]

    def record(self, verdicts: Sequence[float]) -> None:
        """``compare(i, j)`` of each match of ``matches()``, in order."""
        active = self._active()
        if len(verdicts) != 2 * len(active):
            raise ValueError(f"{2 * len(active)} matches this round, got {len(verdicts)} verdicts")
        self.comparisons += len(verdicts)
        for k, (left, right, out) in enumerate(active):
            share = (verdicts[2 * k] + 1.0 - verdicts[2 * k + 1]) / 2  # left head's win share over both orders
            out.append(left.pop(0) if share >= 0.5 else right.pop(0))
        if not self._active():  # the level is done: each merge's rest follows its merged part
            self.runs = [out + left + right for left, right, out in self.merges] + ([self.carry] if self.carry else [])
            self.merges, self.carry = [], None
            self._start_level()

    def result(self) -> Ranking:
        if self.merges or len(self.runs) != 1:
            raise ValueError("the sort is not finished")
        return Ranking(order=list(self.runs[0]), comparisons=self.comparisons)


def merge_sort(n: int, compare: Compare, seed: int = 0) -> Ranking:
    m = MergeSort(n, seed)
    while matches := m.matches():
        m.record([compare(i, j) for i, j in matches])
    return m.result()


def all_pairs_matches(n: int, both_orders: bool = True) -> list[tuple[int, int]]:
    """Every comparison ``all_pairs`` asks for: (i, j) for i < j, each followed by (j, i) with both orders."""
    _check_n(n)
    out = []
    for i in range(n):
        for j in range(i + 1, n):
            out += [(i, j), (j, i)] if both_orders else [(i, j)]
    return out


def all_pairs_ranking(n: int, verdicts: Mapping[tuple[int, int], float]) -> Ranking:
    """Copeland ranking from ``compare(i, j)`` of every match of ``all_pairs_matches`` (a match in both
    orders is averaged, the second verdict sign-corrected)."""
    _check_n(n)
    wins = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            shares = [verdicts[(i, j)]] + ([1.0 - verdicts[(j, i)]] if (j, i) in verdicts else [])
            share = sum(shares) / len(shares)
            wins[i][j], wins[j][i] = share, 1.0 - share
    total = [sum(row) for row in wins]
    order = sorted(range(n), key=lambda i: (-total[i], i))
    return Ranking(order=order, comparisons=len(verdicts), wins=wins)


def all_pairs(n: int, compare: Compare, both_orders: bool = True) -> Ranking:
    return all_pairs_ranking(n, {(i, j): compare(i, j) for i, j in all_pairs_matches(n, both_orders)})


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
    if strategy == "sort":
        return merge_sort(n, compare, seed)
    raise ValueError(f"unknown ranking strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")


AskMany = Callable[[list[tuple[int, int, int]]], list[float]]
"""(item, i, j) matches of many items → ``compare(i, j)`` of each, in order (one judge batch)."""


def rank_many(strategy: str, sizes: Sequence[int], ask: AskMany, seeds: Optional[Sequence[int]] = None,
              both_orders: bool = True) -> list[Ranking]:
    """Rank many items with a pairwise strategy, asking the judge one batch per knockout or sort round
    (``all_pairs``: one batch in all), so a served or batched judge sees every item's matches at once."""
    seeds = list(seeds) if seeds is not None else [0] * len(sizes)
    if strategy in ("knockout", "sort"):
        played = Knockout if strategy == "knockout" else MergeSort
        brackets = [played(n, seed) for n, seed in zip(sizes, seeds)]
        while True:
            todo = [(k, i, j) for k, b in enumerate(brackets) for i, j in b.matches()]
            if not todo:
                return [b.result() for b in brackets]
            verdicts = ask(todo)
            for k, b in enumerate(brackets):
                mine = [v for (item, _, _), v in zip(todo, verdicts) if item == k]
                if mine:
                    b.record(mine)
    if strategy == "all_pairs":
        todo = [(k, i, j) for k, n in enumerate(sizes) for i, j in all_pairs_matches(n, both_orders)]
        verdicts = ask(todo)
        per_item: list[dict[tuple[int, int], float]] = [{} for _ in sizes]
        for (k, i, j), v in zip(todo, verdicts):
            per_item[k][(i, j)] = v
        return [all_pairs_ranking(n, per_item[k]) for k, n in enumerate(sizes)]
    raise ValueError(f"rank_many takes a pairwise strategy (knockout, all_pairs, sort), got {strategy!r}")
