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

from nemo_thinkrm.algorithms.filters import has_signal
from nemo_thinkrm.algorithms.rewards import combine, position_consistency
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.registry import ADVANTAGES, REWARDS
from nemo_thinkrm.config.rl import GRPOConfig
from nemo_thinkrm.data.master_keys import master_key_negatives
from nemo_thinkrm.data.preference import load_preference_data
from nemo_thinkrm.genrm import load_template, parse_verdict, sample_accuracy
from nemo_thinkrm.genrm.prompts import build_prompts, split_over_length
from nemo_thinkrm.models.tokenizer import chat_renderer
from nemo_thinkrm.trainers.policy import RLTask, Scores, build_policy, run_policy, start_policy

logger = logging.getLogger("nemo_thinkrm.grpo")


class VerdictRewards:
    """GRPO's reward source: the judge prompts of a preference set, their ground truth, and the
    verdict rules (``algorithms/rewards.py``) that score each sampled judgement.

    ``groups[i]`` holds the prompt(s) of group i: one order, or with ``swap=both`` the pair's two
    orders, which its samples take in turn (J1's layout for position-consistent rewards)."""

    def __init__(self, cfg: GRPOConfig, tokenizer, reward_fn) -> None:
        self.group_size = cfg.group_size
        self.template = load_template(cfg.template)
        self.reward_fn = reward_fn
        self.reward_options = {"max_new_tokens": cfg.generation.max_new_tokens, **dict(cfg.reward_options)}
        records = load_preference_data(cfg.data.name, path=cfg.data.path, hub_id=cfg.data.hub_id,
                                       split=cfg.data.split, field_map=dict(cfg.data.field_map) or None,
                                       limit=cfg.data.limit).records
        records += master_key_negatives(records, cfg.data.master_key_negatives, cfg.seed)
        render, count = chat_renderer(tokenizer, cfg.model.tokenizer.think_prefix)
        prompts = build_prompts(records, self.template, render, count, seed=cfg.seed, swap=cfg.swap)
        kept, over = split_over_length(prompts, cfg.max_prompt_tokens)
        if over:
            logger.warning("%d pairs longer than max_prompt_tokens=%d are not used", len(over), cfg.max_prompt_tokens)
        self.groups: list[tuple] = []
        by_pair: dict[str, list] = {}
        for p in kept:
            if cfg.swap == "both":
                by_pair.setdefault(p.example_id, []).append(p)
            else:
                self.groups.append((p,))
        self.groups += [tuple(orders) for pair_id, orders in by_pair.items() if pair_id not in over]
        self.both_orders = cfg.swap == "both"
        if getattr(reward_fn, "needs_partner", False) and not self.both_orders:
            raise ConfigError("the 'consistent' reward needs swap=both (a pair's two orders in one group)")
        if len(self.groups) < cfg.prompts_per_step:
            raise ConfigError(f"{len(self.groups)} usable prompts < prompts_per_step={cfg.prompts_per_step}")

    def score(self, chosen, samples, step: int) -> Scores:
        """[P, G] verdict rewards, with accuracy and invalid verdicts beside them."""
        mode = self.template.mode
        G = self.group_size
        r, c, inv = [], [], []
        for k, x in enumerate(samples):
            orders = self.groups[chosen[k // G]]
            p = orders[(k % G) % len(orders)]
            # under swap=both, samples 2j and 2j+1 judged the pair in its two orders: each other's partner
            partner = (samples[k ^ 1].text, orders[((k ^ 1) % G) % 2].label) if self.both_orders else None
            r.append(self.reward_fn(x.text, p.label, mode=mode, n_tokens=len(x.output_ids), partner=partner,
                                    **self.reward_options))
            v = parse_verdict(x.text, mode)
            c.append(sample_accuracy(v, p.label)[0])
            inv.append(0.0 if v.valid else 1.0)
        shape = (len(chosen), G)
        rewards, correct, invalid = (torch.tensor(v).view(shape) for v in (r, c, inv))
        metrics = {"accuracy": float(correct.mean()), "invalid_rate": float(invalid.mean())}
        if self.both_orders:
            metrics["position_consistency"] = position_consistency(correct > 0.5, invalid < 0.5)
        metrics.update(reward_mean=float(rewards.mean()), groups_with_signal=float(has_signal(rewards).float().mean()))
        return Scores(rewards=rewards, metrics=metrics,
                      columns={"reward": rewards.view(-1).tolist(), "valid_verdict": [i == 0 for i in inv]})

    def close(self) -> None:
        pass


def grpo_task(cfg: GRPOConfig, tokenizer, reward_fn) -> RLTask:
    source = VerdictRewards(cfg, tokenizer, reward_fn)
    ids = [orders[0].example_id if len(orders) > 1 else orders[0].prompt_id for orders in source.groups]
    texts = [orders[0].text if len(orders) == 1 else tuple(p.text for p in orders) for orders in source.groups]
    return RLTask(ids=ids, texts=texts, source=source)


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
