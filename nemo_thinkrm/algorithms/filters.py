"""Batch filters: which of a step's samples the update learns from (``filters:`` in an RL config).

Each entry of ``config/registry.py: BATCH_FILTERS`` takes the step's ``[P, G]`` advantages and
what the reward source said, and returns the advantages with some zeroed plus its metric (the
share it zeroed). A filter never changes the batch's shape, so a PPO mini-batch stays
``global_batch_size`` sequences on every rank. DAPO's dynamic sampling, which replaces groups
without signal by fresh ones instead of zeroing them, is a rollout option
(``dynamic_sampling_rounds``) built on ``has_signal``.
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
