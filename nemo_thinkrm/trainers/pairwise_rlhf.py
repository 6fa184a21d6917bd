"""``thinkrm pairwise-rlhf``: align a policy directly from a served GenRM's pairwise verdicts.

One step: G responses per prompt from the policy → every pair (i<j; optionally both orders)
judged by the servers (async client: spread, retries, failover; a pair that still fails
scores 0 and is counted) → skew-symmetric preference matrix → Think-RM's pairwise
advantage (``algorithms/advantages.py``) → the same clipped policy-gradient update and
reference KL as GRPO (``trainers/grpo.py``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.stages import PairwiseRLHFConfig
from nemo_thinkrm.data.prompts import load_prompts
from nemo_thinkrm.runtime.distributed import broadcast_from_rank0, is_rank0

logger = logging.getLogger("nemo_thinkrm.pairwise_rlhf")


def setup(cfg: PairwiseRLHFConfig) -> dict[str, Any]:
    from nemo_thinkrm.generation.judge_cache import JudgeCache
    from nemo_thinkrm.generation.openai_client import ClientConfig
    from nemo_thinkrm.genrm import load_template
    from nemo_thinkrm.models.tokenizer import load_tokenizer, render_generation_prompt
    from nemo_thinkrm.trainers.policy_rl import build_policy, start_policy

    tok = start_policy(cfg, "the policy to align (🤗, native or run dir)")
    judge_tok = load_tokenizer(type(cfg.model.tokenizer)(name=cfg.judge.model, think_prefix=cfg.judge.think_prefix))
    prompts = load_prompts(cfg.prompt_path)
    texts = [render_generation_prompt(tok, p, think_prefix=False) for p in prompts]
    fits = [len(ids) <= cfg.max_prompt_tokens for ids in tok(texts, add_special_tokens=False)["input_ids"]]
    if not all(fits):
        logger.warning("%d prompts longer than max_prompt_tokens=%d are not used", fits.count(False),
                       cfg.max_prompt_tokens)
        prompts, texts = [p for p, ok in zip(prompts, fits) if ok], [t for t, ok in zip(texts, fits) if ok]
    if len(prompts) < cfg.prompts_per_step:
        raise ConfigError(f"{len(prompts)} usable prompts < prompts_per_step={cfg.prompts_per_step}")
    policy = build_policy(cfg, tok, cfg.generation.stop)
    client = ClientConfig(endpoints=cfg.judge.endpoints, model=cfg.judge.model, api_key=cfg.judge.api_key,
                          max_concurrency=cfg.judge.max_concurrency, request_timeout_s=cfg.judge.request_timeout_s,
                          max_retries=cfg.judge.max_retries)
    # rank 0 asks the judges and keeps the cache (one writer); the other ranks get its answers
    cache = (JudgeCache(cfg.judge.cache_path or Path(cfg.run_dir) / "judge_cache.jsonl")
             if cfg.judge.cache and is_rank0() else None)
    return {**policy, "judge_tokenizer": judge_tok, "template": load_template(cfg.judge.template),
            "prompts": prompts, "policy_texts": texts,
            "client": client, "cache": cache}


def run(cfg: PairwiseRLHFConfig) -> dict[str, Any]:
    from nemo_thinkrm.trainers.policy_rl import run_policy_loop

    history = run_policy_loop(cfg, setup(cfg), pairwise_step)
    return history[-1] if history else {}


def pairwise_step(cfg: PairwiseRLHFConfig, s: dict[str, Any], step: int) -> dict[str, float]:
    from nemo_thinkrm.generation.interface import GenerationRequest
    from nemo_thinkrm.trainers.grpo import build_batch, choose_prompts, reference_logprobs, update
    from nemo_thinkrm.trainers.policy_rl import sample_rollouts

    t0 = time.time()
    chosen = choose_prompts(len(s["prompts"]), cfg.prompts_per_step, cfg.seed, step)
    reqs = [GenerationRequest(f"p{i}:g{g}", s["policy_texts"][i], seed=(step * 100_003 + i) * cfg.group_size + g)
            for i in chosen for g in range(cfg.group_size)]
    samples = sample_rollouts(cfg, s, reqs)
    t1 = time.time()
    adv, judge_stats = judge_groups(cfg, s, chosen, samples, step)
    t2 = time.time()
    batch = build_batch(samples, adv, s["tokenizer"].pad_token_id)
    batch["old_logprob"], batch["ref_logprob"] = reference_logprobs(cfg, s, batch)  # type: ignore[arg-type]
    stats = update(cfg, s, batch)  # type: ignore[arg-type]
    t3 = time.time()
    lengths = torch.tensor([len(x.output_ids) for x in samples], dtype=torch.float)
    return {**judge_stats, "response_length": float(lengths.mean()), **stats,
            "time_rollout_s": t1 - t0, "time_judge_s": t2 - t1, "time_update_s": t3 - t2}


class JudgeFailure(ConfigError):
    """Too many judge requests of a step failed: stop with one line instead of training on noise."""


def judge_groups(cfg: PairwiseRLHFConfig, s: dict[str, Any], chosen: list[int], samples, step: int):
    """Judge every pair of every group; return per-sample advantages and judge metrics."""
    from nemo_thinkrm.algorithms.advantages import (group_pairs, pairwise_advantages, pairwise_scores,
                                                    preference_matrix)
    from nemo_thinkrm.generation.judge_cache import cache_key
    from nemo_thinkrm.generation.openai_client import SamplingParams
    from nemo_thinkrm.genrm import INVALID, parse_verdict
    from nemo_thinkrm.models.tokenizer import render_generation_prompt

    G, template = cfg.group_size, s["template"]
    pairs = group_pairs(G, both_orders=cfg.judge.both_orders)
    requests = []
    for k, i in enumerate(chosen):
        outs = [samples[k * G + g].text for g in range(G)]
        for a, b in pairs:
            user = template.render(s["prompts"][i], outs[a], outs[b])
            text = render_generation_prompt(s["judge_tokenizer"], [{"role": "user", "content": user}],
                                            cfg.judge.think_prefix)
            # the seed follows the pair's content, so an identical pair gets the identical (cacheable) verdict
            seed = int(cache_key(text, {})[:8], 16)
            requests.append((f"s{step}:p{i}:{a}-{b}", text, SamplingParams(
                temperature=cfg.judge.temperature, max_tokens=cfg.judge.max_new_tokens, seed=seed)))
    answers = ask_judges(s, requests)
    verdicts, lengths, failed = [], [], 0
    for ans in answers:
        if ans["error"] is None:
            verdicts.append(parse_verdict(ans["text"], template.mode))
            lengths.append(max(1, ans["tokens"]))
        else:  # never dropped: recorded as failed, scores 0
            failed += 1
            verdicts.append(INVALID)
            lengths.append(1)
    if failed > cfg.judge.max_failed_fraction * len(answers):
        raise JudgeFailure(f"step {step}: {failed} of {len(answers)} judge requests failed (more than "
                           f"judge.max_failed_fraction={cfg.judge.max_failed_fraction}); check the judge servers "
                           f"({cfg.judge.endpoints}) and their logs. The last checkpoint is kept; re-run to resume.")
    scores = pairwise_scores(verdicts, template.mode, lengths,
                             length_normalize=cfg.judge.length_normalize and template.mode == "binary")
    d = preference_matrix(scores.view(len(chosen), len(pairs)), pairs, G)
    adv = pairwise_advantages(d).reshape(-1)
    wins = (d > 0).float().sum(-1) / (G - 1)
    latency = [a["latency_s"] for a in answers if not a["cached"]]
    invalid = sum(1 for v in verdicts if not v.valid) - failed
    return adv, {"win_rate_vs_group": float(wins.mean()), "judge_pairs": len(answers), "failed_pairs": failed,
                 "invalid_verdicts": invalid, "judge_latency_s": sum(latency) / max(len(latency), 1),
                 "cached_pairs": sum(a["cached"] for a in answers)}


def ask_judges(s: dict[str, Any], requests: list) -> list[dict[str, Any]]:
    """Answers in request order: cached ones from the cache, the rest from the servers.

    Every rank holds the same rollouts (hence the same requests); rank 0 alone asks and
    caches, and broadcasts the answers, so no request is sent twice and one process
    appends to ``judge_cache.jsonl``.
    """
    outcome = None
    if is_rank0():
        try:
            outcome = ("ok", _ask_judges(s, requests))
        except Exception as exc:  # tell the other ranks, which wait in the broadcast, then fail here too
            broadcast_from_rank0(("error", f"{type(exc).__name__}: {exc}"))
            raise
    kind, value = broadcast_from_rank0(outcome)
    if kind == "error":
        raise RuntimeError(f"rank 0 failed while asking the judges: {value}")
    return value


def _ask_judges(s: dict[str, Any], requests: list) -> list[dict[str, Any]]:
    """Cache hits first; an identical request twice in one batch (same prompt and seed) is asked once."""
    from nemo_thinkrm.generation.judge_cache import cache_key
    from nemo_thinkrm.generation.openai_client import OpenAIJudgeClient

    cache = s.get("cache")
    keys = [cache_key(text, sp.to_payload()) for _, text, sp in requests]
    answers: list[Any] = [None] * len(requests)
    asked: dict[str, int] = {}  # key -> the request that is sent
    for i, key in enumerate(keys):
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            answers[i] = {**hit, "cached": True}
        elif key not in asked:
            asked[key] = i
    todo = list(asked.values())
    results = OpenAIJudgeClient.generate_many_sync(s["client"], [requests[i] for i in todo]) if todo else []
    for i, r in zip(todo, results):
        ans = {"text": r.texts[0] if r.ok else "", "tokens": r.completion_tokens[0] if r.ok else 0,
               "error": r.error, "latency_s": r.latency_s}
        if r.ok and cache is not None:
            cache.put(keys[i], ans)
        answers[i] = {**ans, "cached": False}
    for i, key in enumerate(keys):
        if answers[i] is None:  # the same request as an earlier one of this batch
            answers[i] = {**answers[asked[key]], "cached": True}
    return answers
