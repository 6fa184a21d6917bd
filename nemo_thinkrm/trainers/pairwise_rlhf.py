"""``thinkrm pairwise-rlhf``: align a policy directly from a served GenRM's pairwise verdicts.

One step: G responses per prompt from the policy → every pair (i<j; optionally both orders)
judged by the servers (``generation/judge.py``: cached, one client for the run with
spread, retries and failover; a pair that still fails scores 0 and is counted) →
skew-symmetric preference matrix → Think-RM's pairwise advantage
(``algorithms/advantages.py``) → the shared policy-gradient step (``trainers/policy.py``).

``judge.kind=reward_model`` puts a Bradley-Terry reward model in the judge's place (the baseline
Think-RM compares with): it scores each response once (``generation/reward_scorer.py``, in the
trainer's processes) and d_ij = r_i − r_j, for which the same pairwise advantage is GRPO's
(r − mean) / std; everything else in the step is shared, so the two judges compare on one run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from nemo_thinkrm.algorithms.advantages import group_pairs, pairwise_advantages, pairwise_scores, preference_matrix
from nemo_thinkrm.checkpoint.convert import shared_hf_dir
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.stages import PairwiseRLHFConfig
from nemo_thinkrm.data.prompts import load_prompts
from nemo_thinkrm.generation.interface import GenerationOutput, GenerationRequest
from nemo_thinkrm.generation.judge import CachedJudge
from nemo_thinkrm.generation.judge_cache import JudgeCache, cache_key
from nemo_thinkrm.generation.openai_client import ClientConfig
from nemo_thinkrm.generation.reward_scorer import ScoreRequest, build_scorer
from nemo_thinkrm.genrm import INVALID, load_template, parse_verdict
from nemo_thinkrm.genrm.prompts import pair_prompt
from nemo_thinkrm.models.tokenizer import chat_renderer, load_tokenizer, render_generation_prompt
from nemo_thinkrm.runtime.distributed import (all_gather_objects, data_parallel_coords, is_rank0,
                                              leads_model_parallel_group)
from nemo_thinkrm.trainers.policy import (PolicyState, build_policy, choose_prompts, replica_share,
                                          policy_gradient_step, run_policy, sample_rollouts, start_policy)

logger = logging.getLogger("nemo_thinkrm.pairwise_rlhf")


class JudgeFailure(ConfigError):
    """Too many judge requests of a step failed: stop with one line instead of training on noise."""


class PairwiseTask:
    """The policy's prompts and the judge that compares its responses."""

    def __init__(self, cfg: PairwiseRLHFConfig, tokenizer) -> None:
        prompts = load_prompts(cfg.prompt_path)
        texts = [render_generation_prompt(tokenizer, p, think_prefix=False) for p in prompts]
        fits = [len(ids) <= cfg.max_prompt_tokens for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        if not all(fits):
            logger.warning("%d prompts longer than max_prompt_tokens=%d are not used", fits.count(False),
                           cfg.max_prompt_tokens)
            prompts, texts = [p for p, ok in zip(prompts, fits) if ok], [t for t, ok in zip(texts, fits) if ok]
        if len(prompts) < cfg.prompts_per_step:
            raise ConfigError(f"{len(prompts)} usable prompts < prompts_per_step={cfg.prompts_per_step}")
        self.prompts, self.texts = prompts, texts
        self.ids = [f"p{i}" for i in range(len(prompts))]
        # the first rank of each data-parallel replica asks the judge for that replica's groups
        self.judge, self.scorer, self.template = None, None, None
        if cfg.judge.kind == "reward_model":
            rm_dir = reward_model_dir(cfg.judge.model, Path(cfg.run_dir) / "judge_hf")
            if leads_model_parallel_group():
                self.scorer = build_scorer(str(rm_dir), batch_size=cfg.judge.batch_size)
            return
        self.template = load_template(cfg.judge.template)
        judge_tok = load_tokenizer(type(cfg.model.tokenizer)(name=cfg.judge.model, think_prefix=cfg.judge.think_prefix))
        self.render_judge, _ = chat_renderer(judge_tok, cfg.judge.think_prefix)
        # every asker reads the cache, rank 0 alone appends to it (one writer per file)
        if leads_model_parallel_group():
            cache = (JudgeCache(cfg.judge.cache_path or Path(cfg.run_dir) / "judge_cache.jsonl", write=is_rank0())
                     if cfg.judge.cache else None)
            client = ClientConfig(endpoints=cfg.judge.endpoints, model=cfg.judge.model, api_key=cfg.judge.api_key,
                                  max_concurrency=cfg.judge.max_concurrency,
                                  request_timeout_s=cfg.judge.request_timeout_s, max_retries=cfg.judge.max_retries)
            self.judge = CachedJudge(client, cfg.judge.temperature, cfg.judge.max_new_tokens, cache)

    def close(self) -> None:
        for engine in (self.judge, self.scorer):
            if engine is not None:
                engine.close()


def reward_model_dir(path: str, target: Path) -> Path:
    """The reward model as the 🤗 directory the scorer loads: converted once, by rank 0 alone."""
    return shared_hf_dir(path, target)


def run(cfg: PairwiseRLHFConfig) -> dict[str, Any]:
    tokenizer = start_policy(cfg, "the policy to align (🤗, native or run dir)")
    task = PairwiseTask(cfg, tokenizer)
    state = build_policy(cfg, tokenizer, cfg.generation.stop)
    try:
        history = run_policy(cfg, state, lambda c, s, step: pairwise_step(c, s, task, step))
    finally:
        task.close()
    return history[-1] if history else {}


def pairwise_step(cfg: PairwiseRLHFConfig, state: PolicyState, task: PairwiseTask, step: int) -> dict[str, float]:
    t0 = time.time()
    chosen = choose_prompts(len(task.prompts), cfg.prompts_per_step, cfg.seed, step)
    samples, rollout_stats = sample_rollouts(cfg, state, task.ids, task.texts, chosen, step)
    t1 = time.time()
    judge = score_groups if cfg.judge.kind == "reward_model" else judge_groups
    adv, judge_stats = judge(cfg, task, chosen, samples, step)
    t2 = time.time()
    stats = policy_gradient_step(cfg, state, samples, adv)
    return {**judge_stats, **stats, **rollout_stats, "time_rollout_s": t1 - t0, "time_judge_s": t2 - t1}


def judge_requests(cfg: PairwiseRLHFConfig, task: PairwiseTask, chosen: list[int], samples, step: int,
                   pairs: Sequence[tuple[int, int]]) -> list[GenerationRequest]:
    """One judge request per ordered pair of every group."""
    G = cfg.group_size
    requests = []
    for k, i in enumerate(chosen):
        outs = [samples[k * G + g].text for g in range(G)]
        for a, b in pairs:
            text = pair_prompt(task.template, task.prompts[i], outs[a], outs[b], task.render_judge)
            # the seed follows the pair's content, so an identical pair gets the identical (cacheable) verdict
            requests.append(GenerationRequest(f"s{step}:p{i}:{a}-{b}", text, seed=int(cache_key(text, {})[:8], 16)))
    return requests


def judge_groups(cfg: PairwiseRLHFConfig, task: PairwiseTask, chosen: list[int], samples, step: int):
    """Judge every pair of every group; return per-sample advantages and judge metrics."""
    G, mode = cfg.group_size, task.template.mode
    pairs = group_pairs(G, both_orders=cfg.judge.both_orders)
    requests = judge_requests(cfg, task, chosen, samples, step, pairs)
    mine = set(replica_share(range(len(chosen)), *data_parallel_coords()))  # this DP replica's groups
    answers = ask_judges(task, requests, [n for n in range(len(requests)) if n // len(pairs) in mine])
    verdicts, lengths, failed = [], [], 0
    for ans in answers:
        if ans.error is None:
            verdicts.append(parse_verdict(ans.text, mode))
            lengths.append(max(1, ans.output_tokens))
        else:  # never dropped: recorded as failed, scores 0
            failed += 1
            verdicts.append(INVALID)
            lengths.append(1)
    if failed > cfg.judge.max_failed_fraction * len(answers):
        raise JudgeFailure(f"step {step}: {failed} of {len(answers)} judge requests failed (more than "
                           f"judge.max_failed_fraction={cfg.judge.max_failed_fraction}); check the judge servers "
                           f"({cfg.judge.endpoints}) and their logs. The last checkpoint is kept; re-run to resume.")
    scores = pairwise_scores(verdicts, mode, lengths, length_normalize=cfg.judge.length_normalize and mode == "binary")
    d = preference_matrix(scores.view(len(chosen), len(pairs)), pairs, G)
    adv = pairwise_advantages(d).reshape(-1)
    wins = (d > 0).float().sum(-1) / (G - 1)
    latency = [a.latency_s for a in answers if not a.cached]
    invalid = sum(1 for v in verdicts if not v.valid) - failed
    return adv, {"win_rate_vs_group": float(wins.mean()), "judge_pairs": len(answers), "failed_pairs": failed,
                 "invalid_verdicts": invalid, "judge_latency_s": sum(latency) / max(len(latency), 1),
                 "cached_pairs": sum(a.cached for a in answers)}


def score_groups(cfg: PairwiseRLHFConfig, task: PairwiseTask, chosen: list[int], samples, step: int):
    """A reward model scores every response of every group; d_ij = r_i − r_j gives the advantages."""
    G = cfg.group_size
    requests = [ScoreRequest(f"s{step}:p{i}:{g}", tuple(task.prompts[i]), samples[k * G + g].text)
                for k, i in enumerate(chosen) for g in range(G)]
    mine = set(replica_share(range(len(chosen)), *data_parallel_coords()))
    ask = task.scorer.score if task.scorer is not None else None
    outs = gather_answers(ask, requests, [n for n in range(len(requests)) if n // G in mine])
    failed = sum(o.score is None for o in outs)
    if failed > cfg.judge.max_failed_fraction * len(outs):
        raise JudgeFailure(f"step {step}: the reward model could not score {failed} of {len(outs)} responses "
                           f"(first: {next(o.error for o in outs if o.error)}); more than "
                           f"judge.max_failed_fraction={cfg.judge.max_failed_fraction}")
    rewards = reward_matrix([o.score for o in outs], G)
    d = score_preferences(rewards)
    adv = pairwise_advantages(d).reshape(-1)
    wins = (d > 0).float().sum(-1) / (G - 1)
    return adv, {"win_rate_vs_group": float(wins.mean()), "judge_pairs": 0, "failed_pairs": failed,
                 "reward_mean": float(rewards.mean()), "reward_std": float(rewards.std(dim=-1).mean()),
                 "judge_tokens": sum(o.tokens for o in outs)}


def reward_matrix(scores: Sequence[float | None], G: int) -> torch.Tensor:
    """[groups, G] rewards; a response that could not be scored gets its group's mean (no push either way)."""
    r = torch.tensor([float("nan") if s is None else s for s in scores], dtype=torch.float64).view(-1, G)
    known = ~torch.isnan(r)
    mean = torch.where(known, r, 0.0).sum(-1, keepdim=True) / known.sum(-1, keepdim=True).clamp(min=1)
    return torch.where(known, r, mean).to(torch.get_default_dtype())


def score_preferences(rewards: torch.Tensor) -> torch.Tensor:
    """[groups, G, G] preference matrix d_ij = r_i − r_j of pointwise rewards (skew-symmetric)."""
    return rewards.unsqueeze(-1) - rewards.unsqueeze(-2)


def ask_judges(task: PairwiseTask, requests: list[GenerationRequest], mine: list[int]) -> list[GenerationOutput]:
    """The GenRM's answers to every request, in order, on every rank (``gather_answers``); each asker
    remembers the other replicas' answers in its cache for later steps."""
    answers = gather_answers(task.judge.generate if task.judge is not None else None, requests, mine)
    if task.judge is not None:
        task.judge.remember(requests, answers)
    return answers


def gather_answers(ask: Optional[Callable[[list], list]], requests: Sequence[Any], mine: list[int]) -> list[Any]:
    """Answers to every request, in order, on every rank.

    Each data-parallel replica's first rank (the one holding ``ask``) asks for the requests of its
    own groups (``mine``), so no request is sent twice and the judges see the replicas' shares in
    parallel; the answers are gathered over all ranks. An asker that fails tells the others through
    the gather, and every rank stops.
    """
    outcome = None
    error: Exception | None = None
    if ask is not None:
        try:
            outcome = ("ok", mine, ask([requests[n] for n in mine]))
        except Exception as exc:  # the others wait in the gather: tell them, then fail here too
            error, outcome = exc, ("error", f"{type(exc).__name__}: {exc}", None)
    gathered = [g for g in all_gather_objects(outcome) if g is not None]
    if error is not None:
        raise error
    failures = [g[1] for g in gathered if g[0] == "error"]
    if failures:
        raise RuntimeError(f"another rank failed while asking the judges: {failures[0]}")
    answers: list[Any] = [None] * len(requests)
    for _, positions, outs in gathered:
        for n, out in zip(positions, outs):
            answers[n] = out
    missing = [n for n, a in enumerate(answers) if a is None]
    if missing:
        raise RuntimeError(f"{len(missing)} judge requests were asked by no rank (first: {requests[missing[0]].id})")
    return answers
