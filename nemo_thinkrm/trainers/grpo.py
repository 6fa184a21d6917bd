"""``thinkrm grpo``: rule-based RL of the judge (Think-RM stage 2).

One step = rollout (G samples per prompt from the current policy) → score (the shared
verdict rules) → group-relative advantages → the shared policy-gradient step
(``trainers/policy.py``: old/reference log-probs, PPO updates over mini-batches).
What is GRPO's own is here: the judge prompts of a preference set, the verdict reward
and the group-relative advantage; the math lives in ``algorithms/``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from nemo_thinkrm.algorithms.advantages import ADVANTAGES, drop_uniform_groups
from nemo_thinkrm.algorithms.rewards import REWARDS, combine
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.stages import GRPOConfig
from nemo_thinkrm.data.preference import load_preference_data
from nemo_thinkrm.genrm import load_template, parse_verdict, sample_accuracy
from nemo_thinkrm.genrm.prompts import build_prompts, split_over_length
from nemo_thinkrm.models.tokenizer import chat_renderer
from nemo_thinkrm.trainers.policy import (PolicyState, build_policy, choose_prompts, policy_gradient_step,
                                          run_policy, sample_rollouts, start_policy)

logger = logging.getLogger("nemo_thinkrm.grpo")


class GRPOTask:
    """The judge prompts GRPO trains on, with their ground truth, and how a verdict is rewarded."""

    def __init__(self, cfg: GRPOConfig, tokenizer) -> None:
        self.template = load_template(cfg.template)
        self.reward_fn = combine(dict(cfg.reward_weights)) if cfg.reward_weights else REWARDS.get(cfg.reward)
        self.advantage_fn = ADVANTAGES.get(cfg.advantage)
        records = load_preference_data(cfg.data.name, path=cfg.data.path, hub_id=cfg.data.hub_id,
                                       split=cfg.data.split, field_map=dict(cfg.data.field_map) or None,
                                       limit=cfg.data.limit).records
        render, count = chat_renderer(tokenizer, cfg.model.tokenizer.think_prefix)
        prompts = build_prompts(records, self.template, render, count, seed=cfg.seed, swap=cfg.swap)
        self.prompts, over = split_over_length(prompts, cfg.max_prompt_tokens)
        if over:
            logger.warning("%d pairs longer than max_prompt_tokens=%d are not used", len(over), cfg.max_prompt_tokens)
        if len(self.prompts) < cfg.prompts_per_step:
            raise ConfigError(f"{len(self.prompts)} usable prompts < prompts_per_step={cfg.prompts_per_step}")
        self.ids, self.texts = [p.prompt_id for p in self.prompts], [p.text for p in self.prompts]


def run(cfg: GRPOConfig) -> dict[str, Any]:
    tokenizer = start_policy(cfg, "GRPO starts from an SFT checkpoint (run dir, native or 🤗)")
    task = GRPOTask(cfg, tokenizer)
    state = build_policy(cfg, tokenizer, cfg.generation.stop or ["</answer>"])
    history = run_policy(cfg, state, lambda c, s, step: grpo_step(c, s, task, step))
    return {"steps": len(history), "reward_first": history[0]["reward_mean"] if history else None,
            "reward_last": history[-1]["reward_mean"] if history else None}


def grpo_step(cfg: GRPOConfig, state: PolicyState, task: GRPOTask, step: int) -> dict[str, float]:
    t0 = time.time()
    chosen = choose_prompts(len(task.prompts), cfg.prompts_per_step, cfg.seed, step)
    samples, rollout_stats = sample_rollouts(cfg, state, task.ids, task.texts, chosen, step)
    t1 = time.time()
    rewards, correct, invalid = score(cfg, task, chosen, samples)
    stats = policy_gradient_step(cfg, state, samples, group_advantages(cfg, task, rewards))
    return {"reward_mean": float(rewards.mean()), "accuracy": float(correct.mean()),
            "invalid_rate": float(invalid.mean()),
            "groups_with_signal": float((rewards.max(1).values != rewards.min(1).values).float().mean()),
            **stats, **rollout_stats, "time_rollout_s": t1 - t0,
            "tokens_per_s": stats["response_tokens"] / max(time.time() - t0, 1e-9)}


def score(cfg: GRPOConfig, task: GRPOTask, chosen: list[int], samples) -> tuple[torch.Tensor, ...]:
    """[P, G] rewards, correctness and invalid-verdict flags of the step's samples."""
    mode = task.template.mode
    r, c, inv = [], [], []
    for k, x in enumerate(samples):
        p = task.prompts[chosen[k // cfg.group_size]]
        r.append(task.reward_fn(x.text, p.label, mode=mode, n_tokens=len(x.output_ids)))
        v = parse_verdict(x.text, mode)
        c.append(sample_accuracy(v, p.label)[0])
        inv.append(0.0 if v.valid else 1.0)
    shape = (len(chosen), cfg.group_size)
    return (torch.tensor(r).view(shape), torch.tensor(c).view(shape), torch.tensor(inv).view(shape))


def group_advantages(cfg: GRPOConfig, task: GRPOTask, rewards: torch.Tensor) -> torch.Tensor:
    """[P, G] rewards → [P·G] advantages (zero for dropped uniform groups)."""
    adv = task.advantage_fn(rewards, scale_by_std=cfg.scale_by_std)
    if cfg.drop_uniform_groups:
        adv = adv * drop_uniform_groups(rewards).unsqueeze(1)
    return adv.reshape(-1)
