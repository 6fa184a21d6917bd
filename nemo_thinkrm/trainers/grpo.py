"""``thinkrm grpo``: rule-based RL of the judge (Think-RM stage 2).

One step = rollout (G samples per prompt from the current policy) → score (the shared
verdict rules) → group-relative advantages → old/reference log-probs → PPO updates over
mini-batches → log → checkpoint. Each phase is one short function; the math lives in
``algorithms/`` (rewards, advantages, clipped loss, KL), the sampling in
``generation/megatron_sampler.py``, the log-probs in ``training/logprobs.py``.

Rollouts are a pure function of (model state, step): prompts are chosen from (seed,
step) and every sample has its own seed, so a resumed run reproduces the uninterrupted
one.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

import torch

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.stages import GRPOConfig

logger = logging.getLogger("nemo_thinkrm.grpo")


def run(cfg: GRPOConfig) -> dict[str, Any]:
    from nemo_thinkrm.trainers.policy_rl import run_policy_loop

    history = run_policy_loop(cfg, setup(cfg), grpo_step)
    return {"steps": len(history), "reward_first": history[0]["reward_mean"] if history else None,
            "reward_last": history[-1]["reward_mean"] if history else None}


# ------------------------------------------------------------------ setup

def setup(cfg: GRPOConfig) -> dict[str, Any]:
    from nemo_thinkrm.algorithms.rewards import REWARDS
    from nemo_thinkrm.data.preference import load_preference_data
    from nemo_thinkrm.evaluation.prompts import build_prompts, split_over_length
    from nemo_thinkrm.genrm import load_template
    from nemo_thinkrm.trainers.policy_rl import build_policy, start_policy

    tokenizer = start_policy(cfg, "GRPO starts from an SFT checkpoint (run dir, native or 🤗)")
    template = load_template(cfg.template)
    reward_fn = REWARDS.get(cfg.reward)
    records = load_preference_data(cfg.data.name, path=cfg.data.path, hub_id=cfg.data.hub_id, split=cfg.data.split,
                                   field_map=dict(cfg.data.field_map) or None, limit=cfg.data.limit).records
    prompts = build_prompts(records, template, tokenizer, seed=cfg.seed, swap=cfg.swap,
                            think_prefix=cfg.model.tokenizer.think_prefix)
    prompts, over = split_over_length(prompts, cfg.max_prompt_tokens)
    if over:
        logger.warning("%d pairs longer than max_prompt_tokens=%d are not used", len(over), cfg.max_prompt_tokens)
    if len(prompts) < cfg.prompts_per_step:
        raise ConfigError(f"{len(prompts)} usable prompts < prompts_per_step={cfg.prompts_per_step}")
    policy = build_policy(cfg, tokenizer, cfg.generation.stop or ["</answer>"])
    return {**policy, "template": template, "reward_fn": reward_fn, "prompts": prompts}


# ------------------------------------------------------------------ one step

def grpo_step(cfg: GRPOConfig, s: dict[str, Any], step: int) -> dict[str, float]:
    t0 = time.time()
    chosen = choose_prompts(len(s["prompts"]), cfg.prompts_per_step, cfg.seed, step)
    samples = rollout(cfg, s, chosen, step)
    t1 = time.time()
    rewards, correct, invalid = score(cfg, s, chosen, samples)
    adv = group_advantages(cfg, rewards)
    batch = build_batch(samples, adv, s["tokenizer"].pad_token_id)
    batch["old_logprob"], batch["ref_logprob"] = reference_logprobs(cfg, s, batch)
    t2 = time.time()
    stats = update(cfg, s, batch)
    t3 = time.time()
    lengths = torch.tensor([len(x.output_ids) for x in samples], dtype=torch.float)
    return {"reward_mean": float(rewards.mean()), "accuracy": float(correct.mean()),
            "invalid_rate": float(invalid.mean()), "response_length": float(lengths.mean()),
            "truncation_rate": sum(x.finish_reason == "length" for x in samples) / len(samples),
            "groups_with_signal": float((rewards.max(1).values != rewards.min(1).values).float().mean()),
            **stats, "lr": s["optimizer"].param_groups[0]["lr"],
            "time_rollout_s": t1 - t0, "time_logprob_s": t2 - t1, "time_update_s": t3 - t2,
            "tokens_per_s": float(batch["response_mask"].sum()) / max(t3 - t0, 1e-9)}


def choose_prompts(n: int, k: int, seed: int, step: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randperm(n, generator=g)[:k].tolist()


def rollout(cfg: GRPOConfig, s: dict[str, Any], chosen: list[int], step: int):
    from nemo_thinkrm.generation.interface import GenerationRequest

    reqs = [GenerationRequest(f"{s['prompts'][i].prompt_id}:g{g}", s["prompts"][i].text,
                              seed=(step * 100_003 + i) * cfg.group_size + g)
            for i in chosen for g in range(cfg.group_size)]
    from nemo_thinkrm.trainers.policy_rl import sample_rollouts

    return sample_rollouts(cfg, s, reqs)


def score(cfg: GRPOConfig, s: dict[str, Any], chosen: list[int], samples) -> tuple[torch.Tensor, ...]:
    from nemo_thinkrm.genrm import parse_verdict, sample_accuracy

    mode = s["template"].mode
    r, c, inv = [], [], []
    for k, x in enumerate(samples):
        p = s["prompts"][chosen[k // cfg.group_size]]
        r.append(s["reward_fn"](x.text, p.label, mode=mode, n_tokens=len(x.output_ids)))
        v = parse_verdict(x.text, mode)
        c.append(sample_accuracy(v, p.label)[0])
        inv.append(0.0 if v.valid else 1.0)
    shape = (len(chosen), cfg.group_size)
    return (torch.tensor(r).view(shape), torch.tensor(c).view(shape), torch.tensor(inv).view(shape))


def group_advantages(cfg: GRPOConfig, rewards: torch.Tensor) -> torch.Tensor:
    """[P, G] rewards → [P·G] advantages (zero for dropped uniform groups)."""
    from nemo_thinkrm.algorithms.advantages import drop_uniform_groups, grpo_advantages

    adv = grpo_advantages(rewards, scale_by_std=cfg.scale_by_std)
    if cfg.drop_uniform_groups:
        adv = adv * drop_uniform_groups(rewards).unsqueeze(1)
    return adv.reshape(-1)


def build_batch(samples, adv: torch.Tensor, pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded prompt+response tensors; targets are the next tokens, the response mask
    covers the positions whose target is a generated token."""
    seqs = [x.prompt_ids + x.output_ids for x in samples]
    width = max(len(q) for q in seqs) - 1
    n = len(seqs)
    ids = torch.full((n, width + 1), pad_id, dtype=torch.long)
    mask = torch.zeros(n, width)
    for k, (x, q) in enumerate(zip(samples, seqs)):
        ids[k, :len(q)] = torch.tensor(q)
        mask[k, len(x.prompt_ids) - 1:len(q) - 1] = 1
    return {"input_ids": ids[:, :-1], "targets": ids[:, 1:], "response_mask": mask,
            "advantages": adv.unsqueeze(1) * mask}


def reference_logprobs(cfg: GRPOConfig, s: dict[str, Any], batch) -> tuple[torch.Tensor, torch.Tensor]:
    from nemo_thinkrm.trainers.policy_rl import reference_model
    from nemo_thinkrm.training.logprobs import token_logprobs

    mb = cfg.micro_batch_size
    old = token_logprobs(s["chunks"], batch["input_ids"], batch["targets"], micro_batch_size=mb, broadcast=True)
    with reference_model(s) as model:
        ref = token_logprobs([model], batch["input_ids"], batch["targets"], micro_batch_size=mb, broadcast=True)
    return old.detach(), ref.detach()


def _pg_loss(cfg: GRPOConfig, vocab_size: int, batch, output):
    """The engine calls this with vocab-sharded logits (no labels in the batch). The policy
    entropy on response tokens is logged, not optimised (Think-RM: no entropy bonus)."""
    from nemo_thinkrm.algorithms.pg_loss import clipped_pg_loss
    from nemo_thinkrm.training.logprobs import vocab_parallel_entropy, vocab_parallel_logprobs

    logprob = vocab_parallel_logprobs(output, batch["targets"], vocab_size)
    loss_sum, count, stats = clipped_pg_loss(
        batch, logprob, clip_eps=cfg.clip_eps, clip_eps_high=cfg.clip_eps_high, dual_clip_c=cfg.dual_clip_c,
        kl_coef=cfg.kl_coef, kl_estimator=cfg.kl_estimator, aggregation=cfg.aggregation)
    stats["entropy_sum"] = (vocab_parallel_entropy(output, vocab_size) * batch["response_mask"]).sum().double()
    return loss_sum, count, stats


def update(cfg: GRPOConfig, s: dict[str, Any], batch) -> dict[str, float]:
    """``ppo_epochs`` passes over the rollout batch in mini-batches of ``global_batch_size``."""
    from megatron.core import parallel_state as ps

    from nemo_thinkrm.training.engine import train_step

    n = batch["input_ids"].shape[0]
    dp, dp_rank = ps.get_data_parallel_world_size(), ps.get_data_parallel_rank()
    mb, gbs = cfg.micro_batch_size, cfg.global_batch_size
    totals: dict[str, float] = {}
    grad_norms = []
    loss_fn = partial(_pg_loss, cfg, cfg.model.vocab_size)
    for epoch in range(cfg.ppo_epochs):
        g = torch.Generator().manual_seed(cfg.seed + epoch)
        order = torch.randperm(n, generator=g)
        for start in range(0, n, gbs):
            mine = order[start:start + gbs][dp_rank::dp]
            mbs = [{k: v[mine[j:j + mb]] for k, v in batch.items()} for j in range(0, len(mine), mb)]
            result = train_step(s["chunks"], s["optimizer"], s["scheduler"], mbs, loss_fn)
            grad_norms.append(result.grad_norm)
            for k, v in result.stats.items():
                totals[k] = totals.get(k, 0.0) + v
    tokens = max(totals.get("tokens", 1.0), 1.0)
    out = {"pg_loss": totals.get("pg_loss_sum", 0.0) / tokens, "clip_fraction": totals.get("clipfrac_sum", 0.0) / tokens,
           "grad_norm": sum(grad_norms) / len(grad_norms), "entropy": totals.get("entropy_sum", 0.0) / tokens}
    if "kl_sum" in totals:
        out["kl"] = totals["kl_sum"] / tokens
    return out
