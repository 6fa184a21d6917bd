"""PPO/GRPO clipped policy-gradient loss in the engine's (sum, count, stats) convention.

Per response token, with ratio ρ = exp(logprob − old_logprob) and advantage A::

    pg = max(−ρ·A, −clip(ρ, 1 − ε, 1 + ε_high)·A)          # = −min(ρA, clip(ρ)A)
    pg = min(pg, −c·A)   where A < 0   (optional dual clip)
    loss = pg + kl_coef · KL(logprob ‖ ref_logprob)         (optional KL loss term)

The dual clip (Ye et al. 2020, "Mastering Complex Control in MOBA Games with
Deep RL", arXiv:1912.09729) bounds the loss of a token with negative advantage
at −c·A = c·|A| however large ρ grows, so one stale, very unlikely-then-likely
token cannot dominate the batch. This follows verl's
``core_algos.compute_policy_loss`` exactly: ``pg_losses3 = −A·c``,
``min(pg_losses3, clipped)`` applied only where ``A < 0``; c must be > 1.

GSPO (Zheng et al. 2025, "Group Sequence Policy Optimization", arXiv:2507.18071) replaces the
per-token ratio by the sequence's: s_i = exp(mean over the response of log ρ_t), one ratio per
sample, clipped as a whole (``gspo_loss``; its paper clips at ε ≈ 3e-4 / 4e-4, not 0.2). Every
token of a sample then carries the same value, so ``seq_mean_token_mean`` gives GSPO's objective
(1/G)·Σ_i min(s_i·A_i, clip(s_i)·A_i) exactly, and its gradient is s_i·A_i·mean_t ∇log π(y_t).

The KL is a loss term, not a reward penalty: Think-RM's GRPO runs verl with
``use_kl_loss=True, kl_loss_type=low_var_kl (k3), kl_loss_coef=1e-4,
use_kl_in_reward=False``.

The function returns a *sum* and its count; the engine divides the gradient
by the global count over micro-batches and data-parallel ranks
(``training/engine.py``):

* ``"token_mean"``: (Σ over response tokens of loss, number of response tokens);
* ``"seq_mean_token_mean"``: (Σ over sequences of the sequence's token-mean
  loss, number of sequences with at least one response token).

Stats are token-level sums so a logger can divide by ``tokens`` exactly over
any number of micro-batches: ``pg_loss_sum``, ``clipfrac_sum`` (tokens where
the clipped branch was taken), ``ratio_sum``, ``kl_sum`` (only when
``kl_coef > 0``), ``dual_clipfrac_sum`` (only with a dual clip), ``tokens``;
plus ``loss_sum``/``loss_count`` (the returned pair) and ``seqs``. The key set
depends only on the options, never on the data, as ``engine.reduce_stats``
requires. Entropy is not computed here.
"""

from __future__ import annotations

from typing import Optional

import torch

from nemo_thinkrm.algorithms.kl import KLEstimator
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.registry import AGGREGATIONS, KL_ESTIMATORS
from nemo_thinkrm.config.rl import check_pg_options

# Past |log ρ| = 20 the ratio (≈ 4.9e8) is clipped for the objective anyway; the
# clamp keeps exp finite so an unclipped branch cannot turn into inf/NaN.
LOG_RATIO_CLAMP = 20.0

REQUIRED_KEYS: tuple[str, ...] = ("old_logprob", "advantages", "response_mask")


def clipped_pg_loss(batch: dict[str, torch.Tensor], logprob: torch.Tensor, *, clip_eps: float = 0.2,
                    clip_eps_high: Optional[float] = None, dual_clip_c: Optional[float] = None,
                    kl_coef: float = 0.0, kl_estimator: str = "k3", aggregation: str = "token_mean",
                    sequence_ratio: bool = False) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(loss_sum, count, stats) of the clipped PPO objective over response tokens (module doc);
    ``sequence_ratio``: GSPO's one ratio per sample instead of one per token.

    ``batch`` holds ``old_logprob``, ``advantages`` (already broadcast to
    tokens), ``response_mask`` (1 on response tokens), all ``[B, T]`` like
    ``logprob``, and ``ref_logprob`` when ``kl_coef > 0``. Masked positions
    contribute exactly nothing, even if their log-probs are garbage. Use with
    the engine as ``functools.partial(clipped_pg_loss, clip_eps=…, …)``.
    """
    eps_low, eps_high = check_pg_options(clip_eps, clip_eps_high, dual_clip_c, kl_coef, aggregation)
    kl_fn = KL_ESTIMATORS.get(kl_estimator)  # validate the name even when the KL term is off
    old_logprob, advantages, mask = _inputs(batch, logprob)
    lp = logprob.float()

    log_ratio = torch.where(mask, lp - old_logprob, torch.zeros_like(lp))
    if sequence_ratio:  # the mean over each sample's response tokens, on every one of them
        per_seq = log_ratio.sum(dim=-1, keepdim=True) / mask.sum(dim=-1, keepdim=True).clamp(min=1)
        log_ratio = torch.where(mask, per_seq.expand_as(log_ratio), torch.zeros_like(lp))
    log_ratio = log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = torch.exp(log_ratio)
    adv = torch.where(mask, advantages, torch.zeros_like(advantages))
    pg, clipped = _clipped_surrogate(ratio, adv, eps_low, eps_high)
    stats: dict[str, torch.Tensor] = {}
    if dual_clip_c is not None:
        pg, dual = _dual_clip(pg, adv, dual_clip_c)
        stats["dual_clipfrac_sum"] = _masked_sum(dual.to(lp.dtype), mask)

    per_token = pg
    if kl_coef > 0:
        kl = _kl(kl_fn, lp, batch, mask)
        per_token = pg + kl_coef * kl
        stats["kl_sum"] = _masked_sum(kl, mask).detach()
    per_token = torch.where(mask, per_token, torch.zeros_like(per_token))

    loss_sum, count = AGGREGATIONS.get(aggregation)(per_token, mask)
    tokens = mask.sum()
    stats.update({
        "loss_sum": loss_sum.detach(),
        "loss_count": count.detach().double(),
        "pg_loss_sum": _masked_sum(pg, mask).detach(),
        "clipfrac_sum": _masked_sum(clipped.to(lp.dtype), mask),
        "ratio_sum": _masked_sum(ratio, mask).detach(),
        "tokens": tokens.detach().double(),
        "seqs": (mask.sum(dim=-1) > 0).sum().double(),
    })
    return loss_sum, count, stats


def gspo_loss(batch: dict[str, torch.Tensor], logprob: torch.Tensor, **options
              ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """GSPO: the clipped objective with one importance ratio per sample (module doc)."""
    return clipped_pg_loss(batch, logprob, sequence_ratio=True, **options)


def _inputs(batch: dict[str, torch.Tensor], logprob: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(old_logprob, advantages) as float32 and the response mask as bool, all [B, T]."""
    missing = [k for k in REQUIRED_KEYS if k not in batch]
    if missing:
        raise ConfigError(f"the policy loss batch lacks {missing}")
    if logprob.dim() != 2:
        raise ConfigError(f"logprob must be [B, T], got {tuple(logprob.shape)}")
    for key in REQUIRED_KEYS:
        if batch[key].shape != logprob.shape:
            raise ConfigError(f"batch[{key!r}] has shape {tuple(batch[key].shape)}, "
                              f"expected {tuple(logprob.shape)} like logprob")
    return batch["old_logprob"].float(), batch["advantages"].float(), batch["response_mask"].bool()


def _clipped_surrogate(ratio: torch.Tensor, adv: torch.Tensor, eps_low: float, eps_high: float
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(max(−ρA, −clip(ρ)A), Bool: the clipped branch is strictly larger, i.e. taken)."""
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    return torch.maximum(unclipped, clipped), clipped > unclipped


def _dual_clip(pg: torch.Tensor, adv: torch.Tensor, c: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Where A < 0: min(pg, −c·A) (verl ``clip_ratio_c``); Bool: where the bound was active."""
    bound = -adv * c
    negative = adv < 0
    return torch.where(negative, torch.minimum(pg, bound), pg), negative & (pg > bound)


def _kl(kl_fn: KLEstimator, lp: torch.Tensor, batch: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """Per-token KL to the reference, 0 on masked positions (their log-probs may be garbage)."""
    if "ref_logprob" not in batch:
        raise ConfigError("kl_coef > 0 needs batch['ref_logprob'] (reference-model log-probs)")
    ref = batch["ref_logprob"]
    if ref.shape != lp.shape:
        raise ConfigError(f"batch['ref_logprob'] has shape {tuple(ref.shape)}, expected {tuple(lp.shape)}")
    zeros = torch.zeros_like(lp)
    return kl_fn(torch.where(mask, lp, zeros), torch.where(mask, ref.float(), zeros))


def _masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, values, torch.zeros_like(values)).sum()


def token_mean(per_token: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss_sum, count): every response token weighs the same (``per_token`` is already 0 off the mask)."""
    return per_token.sum(), mask.sum().to(torch.int)


def seq_mean_token_mean(per_token: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss_sum, count): the mean over each sequence's tokens, then every sequence weighs the same."""
    n_tokens = mask.sum(dim=-1)
    per_seq = per_token.sum(dim=-1) / n_tokens.clamp(min=1).to(per_token.dtype)
    return per_seq.sum(), (n_tokens > 0).sum().to(torch.int)
