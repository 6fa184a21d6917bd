"""``thinkrm grpo``: rule-based RL of the judge (Think-RM stage 2).

One step is the RL core's ``rl_step`` (``trainers/policy.py``): rollout (G samples per prompt
from the current policy) → score → group-relative advantages → the policy-gradient update.
What is GRPO's own is here: its reward source (the judge prompts of a preference set and the
verdict rules); the group-relative advantage is ``advantage: grpo`` (``config/registry.py``) and
the math lives in ``algorithms/``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from nemo_thinkrm.algorithms.advantages import drop_uniform_groups
from nemo_thinkrm.algorithms.rewards import combine
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.registry import ADVANTAGES, REWARDS
from nemo_thinkrm.config.stages import GRPOConfig
from nemo_thinkrm.data.preference import load_preference_data
from nemo_thinkrm.genrm import load_template, parse_verdict, sample_accuracy
from nemo_thinkrm.genrm.prompts import build_prompts, split_over_length
from nemo_thinkrm.models.tokenizer import chat_renderer
from nemo_thinkrm.trainers.policy import RLTask, Scores, build_policy, run_policy, start_policy

logger = logging.getLogger("nemo_thinkrm.grpo")


class VerdictRewards:
    """GRPO's reward source: the judge prompts of a preference set, their ground truth, and the
    verdict rules (``algorithms/rewards.py``) that score each sampled judgement."""

    def __init__(self, cfg: GRPOConfig, tokenizer, reward_fn) -> None:
        self.group_size = cfg.group_size
        self.template = load_template(cfg.template)
        self.reward_fn = reward_fn
        self.reward_options = {"max_new_tokens": cfg.generation.max_new_tokens, **dict(cfg.reward_options)}
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

    def score(self, chosen, samples, step: int) -> Scores:
        """[P, G] verdict rewards, with accuracy and invalid verdicts beside them."""
        mode = self.template.mode
        r, c, inv = [], [], []
        for k, x in enumerate(samples):
            p = self.prompts[chosen[k // self.group_size]]
            r.append(self.reward_fn(x.text, p.label, mode=mode, n_tokens=len(x.output_ids), **self.reward_options))
            v = parse_verdict(x.text, mode)
            c.append(sample_accuracy(v, p.label)[0])
            inv.append(0.0 if v.valid else 1.0)
        shape = (len(chosen), self.group_size)
        rewards, correct, invalid = (torch.tensor(v).view(shape) for v in (r, c, inv))
        return Scores(rewards=rewards, columns={"reward": r, "valid_verdict": [i == 0 for i in inv]},
                      metrics={"reward_mean": float(rewards.mean()), "accuracy": float(correct.mean()),
                               "invalid_rate": float(invalid.mean()),
                               "groups_with_signal": float(drop_uniform_groups(rewards).float().mean())})

    def close(self) -> None:
        pass


def grpo_task(cfg: GRPOConfig, tokenizer, reward_fn) -> RLTask:
    source = VerdictRewards(cfg, tokenizer, reward_fn)
    return RLTask(ids=[p.prompt_id for p in source.prompts], texts=[p.text for p in source.prompts], source=source)


def run(cfg: GRPOConfig) -> dict[str, Any]:
    # names first: a mistyped reward or advantage is one line before any process group or model exists
    reward_fn = combine(dict(cfg.reward_weights)) if cfg.reward_weights else REWARDS.get(cfg.reward)
    ADVANTAGES.check(cfg.advantage, "advantage")
    tokenizer = start_policy(cfg, "GRPO starts from an SFT checkpoint (run dir, native or 🤗)")
    task = grpo_task(cfg, tokenizer, reward_fn)
    state = build_policy(cfg, tokenizer, cfg.generation.stop or ["</answer>"])
    history = run_policy(cfg, state, task)
    return {"steps": len(history), "reward_first": history[0]["reward_mean"] if history else None,
            "reward_last": history[-1]["reward_mean"] if history else None}
