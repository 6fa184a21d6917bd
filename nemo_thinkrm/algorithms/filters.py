"""Batch filters: which of a step's samples the update learns from (``filters:`` in an RL config).

Each entry of ``config/registry.py: BATCH_FILTERS`` takes the step's ``[P, G]`` advantages and
what the reward source said, and returns the advantages with some zeroed plus its metric (the
share it zeroed). A filter never changes the batch's shape, so a PPO mini-batch stays
``global_batch_size`` sequences on every rank.

A filter may also ask for more rollouts: one with a ``refills`` attribute (a function of the scores
giving Bool[P], the groups worth keeping) has the step replace the groups it would drop by groups
of fresh prompts, up to ``resample_rounds`` rounds, before advantages are computed
(``trainers/policy.py: refill``). DAPO's dynamic sampling is such a filter; a new one is a function
here and a line in the registry.
"""

from __future__ import annotations

from typing import Optional

import torch


def has_signal(rewards: Optional[torch.Tensor] = None, preferences: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Bool[P]: the groups whose scores differ (rewards ``[P, G]`` not all equal, or some preference in
    ``[P, G, G]`` non-zero), the only ones a group-relative advantage can learn from."""
    if rewards is not None:
        return (rewards != rewards[:, :1]).any(-1)
    if preferences is None:
        raise ValueError("has_signal needs rewards or preferences")
    return (preferences.flatten(1) != 0).any(-1)


def drop_uniform_groups(adv: torch.Tensor, *, rewards: Optional[torch.Tensor], preferences: Optional[torch.Tensor],
                        truncated: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Zero the groups without signal: their advantages are already 0 under GRPO, so this only matters
    for estimators that leave a constant (e.g. ``scale_by_std=false`` after a penalty) — and it is
    DAPO's cheap variant of dynamic sampling, counted as ``dropped_groups``."""
    keep = has_signal(rewards, preferences)
    return adv * keep.unsqueeze(1), {"dropped_groups": float((~keep).float().mean())}


def mask_truncated(adv: torch.Tensor, *, rewards: Optional[torch.Tensor], preferences: Optional[torch.Tensor],
                   truncated: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """DAPO's overlong filtering (arXiv:2503.14476, section 3.4): a sample cut at ``max_new_tokens``
    gets no advantage, so its unfinished text is neither rewarded nor punished."""
    return torch.where(truncated, torch.zeros_like(adv), adv), {"masked_truncated": float(truncated.float().mean())}


def dynamic_sampling(adv: torch.Tensor, *, rewards: Optional[torch.Tensor], preferences: Optional[torch.Tensor],
                     truncated: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """DAPO's dynamic sampling (arXiv:2503.14476, section 3.2): groups without signal are replaced by
    groups of fresh prompts that have it (``refills``, bounded by ``resample_rounds``); what is still
    without signal when the rounds run out is zeroed here, as ``drop_uniform_groups`` does."""
    return drop_uniform_groups(adv, rewards=rewards, preferences=preferences, truncated=truncated)


dynamic_sampling.refills = has_signal
