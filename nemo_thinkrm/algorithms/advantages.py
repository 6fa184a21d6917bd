"""Group advantages for GRPO (pointwise rewards) and Think-RM's pairwise RLHF.

Every estimator (``config/registry.py: ADVANTAGES``) reads one kind of score and says which in its
``reads`` attribute (``trainers/policy.py: Scores`` has both fields):

* ``"rewards"`` — pointwise rewards ``Tensor[num_groups, G]``: "grpo".
* ``"preferences"`` — a skew-symmetric preference matrix ``Tensor[num_groups, G, G]`` (Think-RM's
  pairwise RLHF; build it with ``pairwise_scores`` → ``preference_matrix``): "pairwise".

Each returns ``Tensor[num_groups, G]``.

Plus ``broadcast_to_tokens`` (one advantage per sample onto its response tokens). Nothing here
communicates; groups are rows. What the update then keeps is a batch filter's choice (``filters.py``).
"""

from __future__ import annotations

from itertools import combinations, permutations
from typing import Callable, Optional, Sequence

import torch

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.genrm.verdict import Verdict, check_mode

AdvantageFn = Callable[..., torch.Tensor]


# --------------------------------------------------------------------------- checks


def _describe(x: object) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def _check_rewards(rewards: torch.Tensor) -> torch.Tensor:
    """A finite ``[num_groups, G]`` floating tensor (ints are promoted)."""
    if not isinstance(rewards, torch.Tensor) or rewards.dim() != 2:
        raise ConfigError(f"rewards must be a [num_groups, G] tensor, got {_describe(rewards)}")
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.get_default_dtype())
    if not torch.isfinite(rewards).all():
        raise ConfigError("rewards contain NaN or inf")
    return rewards


def _uniform(rewards: torch.Tensor) -> torch.Tensor:
    """Bool[num_groups]: True where every reward of the group equals the first (exactly)."""
    return (rewards == rewards[:, :1]).all(dim=-1)


# --------------------------------------------------------------------------- pointwise


def grpo_advantages(rewards: torch.Tensor, *, scale_by_std: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """GRPO's group-relative advantage: A_i = (r_i − mean_g(r)) / (std_g(r) + eps).

    ``std`` is the *unbiased* sample standard deviation (``torch.std`` default,
    divisor G − 1), as in DeepSeekMath's GRPO and verl's
    ``compute_grpo_outcome_advantage`` (which Think-RM trains with), so it needs
    G ≥ 2. ``scale_by_std=False`` gives A_i = r_i − mean (Dr. GRPO style,
    no per-group rescaling). A group whose rewards are all equal carries no
    signal: its advantages are exactly 0 (forced, so float round-off in the mean
    cannot leak tiny values amplified by 1/eps).
    """
    rewards = _check_rewards(rewards)
    if eps < 0:
        raise ConfigError(f"eps must be >= 0, got {eps}")
    centered = rewards - rewards.mean(dim=-1, keepdim=True)
    if scale_by_std:
        if rewards.shape[-1] < 2:
            raise ConfigError("GRPO with scale_by_std needs at least 2 responses per group (unbiased std)")
        centered = centered / (rewards.std(dim=-1, keepdim=True) + eps)
    return torch.where(_uniform(rewards).unsqueeze(-1), torch.zeros_like(centered), centered)


def broadcast_to_tokens(adv: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Tensor[B, T]: each sequence's scalar advantage on its response tokens, 0 elsewhere.

    Outcome rewards give one advantage per sequence; the token-level loss needs
    it on every response token (and exactly 0 on prompt/padding positions).
    """
    if adv.dim() != 1 or response_mask.dim() != 2 or adv.shape[0] != response_mask.shape[0]:
        raise ConfigError(f"broadcast_to_tokens needs adv [B] and response_mask [B, T], got "
                          f"{tuple(adv.shape)} and {tuple(response_mask.shape)}")
    values = adv.unsqueeze(-1).expand(response_mask.shape)
    return torch.where(response_mask.bool(), values, torch.zeros_like(values))


# --------------------------------------------------------------------------- pairwise (Think-RM)


def pairwise_scores(verdicts: Sequence[Verdict], mode: str,
                    judge_output_lengths: Optional[Sequence[int]] = None,
                    length_normalize: bool = False) -> torch.Tensor:
    """Tensor[num_pairs]: per-pair preference scores d_ij from the judge's verdicts.

    Each verdict judged a prompt with response i shown as A and response j as
    B; the score is d_ij > 0 when i is preferred (Think-RM's convention: the
    judge's value is r_j − r_i, and the code stores d_ij = −value):

    * multiclass: strength s in −3..3 (negative = A better) → d_ij = −s;
    * binary: "A" → +1, "B" → −1;
    * invalid verdict → 0 (treated as a tie; Think-RM's code does the same).

    ``length_normalize=True`` divides each score by ``judge_output_lengths``
    (the judge's output length per pair), so a long, hesitant judgement moves
    the policy less. Think-RM applies this to binary judgements only: its code
    (PairwiseRLHF/verl/utils/reward_score/call_gen_prm_binary.py) divides ±1 by
    ``len(text)``, the judge output's length in *characters*; here the unit is
    whatever the caller passes (e.g. tokens), and both modes are allowed.
    """
    mode = check_mode(mode)
    n = len(verdicts)
    if length_normalize:
        if judge_output_lengths is None or len(judge_output_lengths) != n:
            raise ConfigError("length_normalize needs one judge output length per verdict")
        for length in judge_output_lengths:
            if isinstance(length, bool) or not isinstance(length, (int, float)) or not length > 0:
                raise ConfigError(f"judge output lengths must be positive numbers, got {length!r}")
    scores = [_verdict_score(v, mode) for v in verdicts]
    if length_normalize and judge_output_lengths is not None:
        scores = [s / float(length) for s, length in zip(scores, judge_output_lengths)]
    return torch.tensor(scores, dtype=torch.get_default_dtype())


def _verdict_score(verdict: Verdict, mode: str) -> float:
    """d_ij of one verdict (A = i, B = j); see ``pairwise_scores``."""
    if not isinstance(verdict, Verdict):
        raise ConfigError(f"pairwise_scores expects Verdict objects, got {type(verdict).__name__}")
    if not verdict.valid:
        return 0.0
    if mode == "multiclass":
        if verdict.strength is None:
            raise ConfigError("a multiclass pairwise score needs a multiclass verdict "
                              "(parse with mode='multiclass')")
        return float(-verdict.strength)
    return 1.0 if verdict.label == "A" else -1.0


def group_pairs(G: int, both_orders: bool = False) -> list[tuple[int, int]]:
    """The (i, j) judge prompts of one group: i < j (Think-RM), or every ordered pair.

    ``both_orders=True`` also shows each pair swapped, which cancels the
    judge's position bias when the two scores are averaged by
    ``preference_matrix``.
    """
    if G < 2:
        raise ConfigError(f"a group needs at least 2 responses, got G={G}")
    return list(permutations(range(G), 2)) if both_orders else list(combinations(range(G), 2))


def preference_matrix(scores: torch.Tensor, pairs: Sequence[tuple[int, int]], G: int,
                      *, average_repeats: bool = True) -> torch.Tensor:
    """Tensor[num_groups, G, G]: the skew-symmetric preference matrix d from per-pair scores.

    ``scores[g, p]`` is the score of ``pairs[p] = (i, j)`` in group g (> 0: i
    preferred over j, as from ``pairwise_scores``). It sets d_ij = score and
    d_ji = −score; the diagonal is 0, and pairs never judged stay 0 (a tie).

    When an unordered pair is judged more than once — typically in both
    orders, (i, j) and (j, i) — each judgement is first sign-corrected to the
    (i, j) orientation (a score s of (j, i) counts as −s for d_ij) and the
    results are averaged: d_ij = (s_(i,j) − s_(j,i)) / 2. ``average_repeats=False``
    refuses repeated pairs instead (a guard for pipelines that should judge once).
    """
    if scores.dim() != 2 or scores.shape[1] != len(pairs):
        raise ConfigError(f"scores must be [num_groups, {len(pairs)}] for {len(pairs)} pairs, "
                          f"got {tuple(scores.shape)}")
    if G < 2:
        raise ConfigError(f"a group needs at least 2 responses, got G={G}")
    forward, backward = _pair_indices(pairs, G, average_repeats)
    dtype = scores.dtype if scores.is_floating_point() else torch.get_default_dtype()
    flat = torch.zeros(scores.shape[0], G * G, dtype=dtype, device=scores.device)
    flat.index_add_(1, forward.to(scores.device), scores.to(dtype))
    flat.index_add_(1, backward.to(scores.device), -scores.to(dtype))
    counts = torch.zeros(G * G, dtype=dtype, device=scores.device)
    ones = torch.ones(len(pairs), dtype=dtype, device=scores.device)
    counts.index_add_(0, forward.to(scores.device), ones)
    counts.index_add_(0, backward.to(scores.device), ones)
    return (flat / counts.clamp(min=1)).view(scores.shape[0], G, G)


def _pair_indices(pairs: Sequence[tuple[int, int]], G: int, average_repeats: bool
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices i·G + j and j·G + i of every pair, after validating the pairs."""
    seen: set[frozenset[int]] = set()
    forward, backward = [], []
    for pair in pairs:
        if len(pair) != 2:
            raise ConfigError(f"a pair must be (i, j), got {pair!r}")
        i, j = pair
        if isinstance(i, bool) or isinstance(j, bool) or not isinstance(i, int) or not isinstance(j, int) \
                or not (0 <= i < G and 0 <= j < G) or i == j:
            raise ConfigError(f"pair {pair!r} must hold two different ints in 0..{G - 1}")
        key = frozenset((i, j))
        if key in seen and not average_repeats:
            raise ConfigError(f"pair {pair!r} is judged more than once; pass average_repeats=True to average")
        seen.add(key)
        forward.append(i * G + j)
        backward.append(j * G + i)
    return torch.tensor(forward, dtype=torch.long), torch.tensor(backward, dtype=torch.long)


def judged_preferences(verdicts: Sequence[Verdict], mode: str, pairs: Sequence[tuple[int, int]], G: int,
                       judge_output_lengths: Optional[Sequence[int]] = None,
                       length_normalize: bool = False) -> torch.Tensor:
    """Tensor[num_groups, G, G]: a step's verdicts (``len(pairs)`` per group, in order) → the preference matrix.

    With length normalization, each unordered pair's judgements are divided by the *mean* length of
    that pair's judgements, not each by its own: d_ij = ((s_ij − s_ji) / 2) / mean(L_ij, L_ji). A judge
    that answers by position on a tie ("A" in both orders) then gives exactly d_ij = 0, as it does
    without normalization; divided one by one, the tie left (1/L_ij − 1/L_ji) / 2, noise that
    ``pairwise_advantages`` scales to unit size in a group of ties. With one order per pair this is
    Think-RM's ±1 / length unchanged.
    """
    n = len(pairs)
    if n == 0 or len(verdicts) % n:
        raise ConfigError(f"{len(verdicts)} verdicts are not a whole number of groups of {n} pairs")
    lengths = None
    if length_normalize:
        if judge_output_lengths is None or len(judge_output_lengths) != len(verdicts):
            raise ConfigError("length_normalize needs one judge output length per verdict")
        per_pair = torch.tensor([float(x) for x in judge_output_lengths]).view(-1, n)
        key = [frozenset(p) for p in pairs]
        same = torch.tensor([[float(a == b) for b in key] for a in key])  # [n, n]: judgements of one pair
        lengths = ((per_pair @ same) / same.sum(-1)).view(-1).tolist()
    scores = pairwise_scores(verdicts, mode, lengths, length_normalize=length_normalize)
    return preference_matrix(scores.view(-1, n), pairs, G)


def pairwise_advantages(d: torch.Tensor, *, scale_by_std: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """Think-RM's pairwise GRPO advantage from a skew-symmetric preference matrix.

    For a group of G responses with d_ij = −d_ji (d_ii = 0; d_ij > 0 when i is
    preferred over j)::

        A_i = (1/G) · Σ_j d_ij  /  sqrt( Σ_{j≠k} d_jk² / (2·G·(G−1)) + eps )

    where Σ_{j≠k} runs over the G·(G−1) *ordered* pairs of the group —
    equivalently Σ_{j<k} d_jk² / (G·(G−1)) under the root. This is Think-RM's
    ``compute_grpo_difference_advantage`` (PairwiseRLHF/verl/trainer/ppo/core_algos.py).

    Why this form: if d_ij = r_i − r_j for some pointwise rewards r, the
    numerator is r_i − mean(r) and the root is the unbiased std of r, so it
    reduces to GRPO's advantage — the pairwise judge never has to produce r.
    The advantages of a group sum to 0 (skew symmetry); an all-tie group
    (d = 0) gives exactly 0 / sqrt(eps) = 0. ``scale_by_std=False`` keeps the numerator alone.
    """
    if not isinstance(d, torch.Tensor) or d.dim() != 3 or d.shape[1] != d.shape[2]:
        raise ConfigError(f"d must be a [num_groups, G, G] tensor, got {_describe(d)}")
    G = d.shape[-1]
    if G < 2:
        raise ConfigError(f"a group needs at least 2 responses, got G={G}")
    if eps < 0:
        raise ConfigError(f"eps must be >= 0, got {eps}")
    if not d.is_floating_point():
        d = d.to(torch.get_default_dtype())
    if not torch.isfinite(d).all():
        raise ConfigError("the preference matrix contains NaN or inf")
    if not torch.allclose(d, -d.transpose(-1, -2), rtol=1e-5, atol=1e-6):
        raise ConfigError("the preference matrix must be skew-symmetric (d_ji = -d_ij, zero diagonal)")
    numerator = d.sum(dim=-1) / G
    if not scale_by_std:  # like GRPO's option: the mean preference alone (r_i − mean(r) when d_ij = r_i − r_j)
        return numerator
    mean_square = d.square().sum(dim=(-2, -1)) / (2 * G * (G - 1))
    denominator = torch.sqrt(mean_square + eps).unsqueeze(-1)
    # Only reachable with eps = 0: an all-tie group would be 0/0; it carries no signal.
    safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return torch.where(denominator > 0, numerator / safe, torch.zeros_like(numerator))


grpo_advantages.reads = "rewards"  # type: ignore[attr-defined]
pairwise_advantages.reads = "preferences"  # type: ignore[attr-defined]
