"""``thinkrm pairwise-rlhf``: align a policy directly from a served GenRM's pairwise verdicts.

One step is the RL core's ``rl_step`` (``trainers/policy.py``): G responses per prompt from the
policy → every pair (i<j; optionally both orders) judged by the servers (``PairwiseJudge``;
``generation/judge.py``: cached, one client for the run with spread, retries and failover; a
pair that still fails scores 0 and is counted) → skew-symmetric preference matrix → Think-RM's
pairwise advantage (``algorithms/advantages.py``) → the policy-gradient update.

``judge.kind=reward_model`` puts a Bradley-Terry reward model in the judge's place (``RewardModelJudge``,
the baseline Think-RM compares with): it scores each response once (``generation/reward_scorer.py``, in
the trainer's processes) and d_ij = r_i − r_j, for which the same pairwise advantage is GRPO's
(r − mean) / std; everything else in the step is shared, so the two judges compare on one run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from nemo_thinkrm.algorithms.advantages import group_pairs, judged_preferences
from nemo_thinkrm.checkpoint.convert import shared_hf_dir
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.registry import PAIRWISE_JUDGES
from nemo_thinkrm.config.rl import PairwiseRLHFConfig
from nemo_thinkrm.data.prompts import load_prompts
from nemo_thinkrm.generation.interface import GenerationOutput, GenerationRequest
from nemo_thinkrm.generation.judge import CachedJudge, PairJudge
from nemo_thinkrm.generation.judge_cache import JudgeCache
from nemo_thinkrm.generation.openai_client import ClientConfig
from nemo_thinkrm.generation.reward_scorer import ScoreRequest, build_scorer
from nemo_thinkrm.genrm import load_template
from nemo_thinkrm.models.tokenizer import load_tokenizer, render_generation_prompt
from nemo_thinkrm.runtime.distributed import (all_gather_objects, data_parallel_coords, is_rank0,
                                              leads_model_parallel_group)
from nemo_thinkrm.trainers.policy import RLTask, Scores, build_policy, replica_share, run_policy, start_policy

logger = logging.getLogger("nemo_thinkrm.pairwise_rlhf")


class JudgeFailure(ConfigError):
    """Too many judge requests of a step failed: stop with one line instead of training on noise."""


def load_policy_prompts(cfg: PairwiseRLHFConfig, tokenizer) -> tuple[list, list[str]]:
    """The policy's prompts (message lists) and their rendered texts, without those over ``max_prompt_tokens``."""
    prompts = load_prompts(cfg.prompt_path)
    texts = [render_generation_prompt(tokenizer, p, think_prefix=False) for p in prompts]
    fits = [len(ids) <= cfg.max_prompt_tokens for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    if not all(fits):
        logger.warning("%d prompts longer than max_prompt_tokens=%d are not used", fits.count(False),
                       cfg.max_prompt_tokens)
        prompts, texts = [p for p, ok in zip(prompts, fits) if ok], [t for t, ok in zip(texts, fits) if ok]
    if len(prompts) < cfg.prompts_per_step:
        raise ConfigError(f"{len(prompts)} usable prompts < prompts_per_step={cfg.prompts_per_step}")
    return prompts, texts


class PairwiseJudge:
    """Think-RM's reward source: a served GenRM judges every pair of every group (both orders on
    request); the verdicts become a skew-symmetric preference matrix."""

    def __init__(self, cfg: PairwiseRLHFConfig, prompts: list) -> None:
        self.cfg, self.prompts = cfg, prompts
        judge_tok = load_tokenizer(type(cfg.model.tokenizer)(name=cfg.judge.model, think_prefix=cfg.judge.think_prefix))
        self.server = None
        # the first rank of each data-parallel replica asks the judge for that replica's groups;
        # every asker reads the cache, rank 0 alone appends to it (one writer per file)
        if leads_model_parallel_group():
            cache = (JudgeCache(cfg.judge.cache_path or Path(cfg.run_dir) / "judge_cache.jsonl", write=is_rank0())
                     if cfg.judge.cache else None)
            client = ClientConfig(endpoints=cfg.judge.endpoints, model=cfg.judge.model, api_key=cfg.judge.api_key,
                                  max_concurrency=cfg.judge.max_concurrency,
                                  request_timeout_s=cfg.judge.request_timeout_s, max_retries=cfg.judge.max_retries)
            self.server = CachedJudge(client, cfg.judge.temperature, cfg.judge.max_new_tokens, cache)
        self.judge = PairJudge(load_template(cfg.judge.template), judge_tok, cfg.judge.think_prefix, ask=None)

    def score(self, chosen: Sequence[int], samples, step: int) -> Scores:
        """Judge every pair of every group: the preference matrix and the judge's metrics."""
        cfg = self.cfg
        G, mode = cfg.group_size, self.judge.template.mode
        pairs = group_pairs(G, both_orders=cfg.judge.both_orders)
        requests = []
        for k, i in enumerate(chosen):
            outs = [samples[k * G + g].text for g in range(G)]
            requests += [self.judge.request(f"s{step}:p{i}:{a}-{b}", self.prompts[i], outs[a], outs[b])
                         for a, b in pairs]
        mine = set(replica_share(range(len(chosen)), *data_parallel_coords()))  # this DP replica's groups
        # the group of every request that is sent (a request over a length limit is not), in sending order
        sent_groups = [n // len(pairs) for n, r in enumerate(requests) if r is not None]
        judged = self.judge.judge(requests, ask=lambda reqs: self.ask(
            [m for m, group in enumerate(sent_groups) if group in mine], reqs))
        failed = sum(j.status == "failed" for j in judged)
        if failed > cfg.judge.max_failed_fraction * len(judged):
            raise JudgeFailure(f"step {step}: {failed} of {len(judged)} judge requests failed (more than "
                               f"judge.max_failed_fraction={cfg.judge.max_failed_fraction}); check the judge "
                               f"servers ({cfg.judge.endpoints}) and their logs. The last checkpoint is kept; re-run "
                               f"to resume.")
        # a failed request is never dropped: it scores 0 (INVALID) and is counted
        lengths = [max(1, j.output.output_tokens) if j.status in ("ok", "invalid") else 1 for j in judged]
        d = judged_preferences([j.verdict for j in judged], mode, pairs, G, lengths,
                               length_normalize=cfg.judge.length_normalize and mode == "binary")
        latency = [j.output.latency_s for j in judged if not j.output.cached]
        return Scores(preferences=d, metrics={
            "win_rate_vs_group": win_rate(d), "judge_pairs": len(judged), "failed_pairs": failed,
            "invalid_verdicts": sum(j.status == "invalid" for j in judged),
            "judge_latency_s": sum(latency) / max(len(latency), 1),
            "cached_pairs": sum(j.output.cached for j in judged)})

    def ask(self, mine: list[int], requests: list[GenerationRequest]) -> list[GenerationOutput]:
        """The GenRM's answers to every request, in order, on every rank (``gather_answers``); each asker
        remembers the other replicas' answers in its cache for later steps."""
        answers = gather_answers(self.server.generate if self.server is not None else None, requests, mine)
        if self.server is not None:
            self.server.remember(requests, answers)
        return answers

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


class RewardModelJudge:
    """A Bradley-Terry reward model in the judge's place (``judge.kind=reward_model``): each response
    scored once, d_ij = r_i − r_j."""

    def __init__(self, cfg: PairwiseRLHFConfig, prompts: list) -> None:
        self.cfg, self.prompts = cfg, prompts
        rm_dir = reward_model_dir(cfg.judge.model, Path(cfg.run_dir) / "judge_hf")
        self.scorer = build_scorer(str(rm_dir), batch_size=cfg.judge.batch_size) if leads_model_parallel_group() \
            else None

    def score(self, chosen: Sequence[int], samples, step: int) -> Scores:
        cfg, G = self.cfg, self.cfg.group_size
        requests = [ScoreRequest(f"s{step}:p{i}:{g}", tuple(self.prompts[i]), samples[k * G + g].text)
                    for k, i in enumerate(chosen) for g in range(G)]
        mine = set(replica_share(range(len(chosen)), *data_parallel_coords()))
        ask = self.scorer.score if self.scorer is not None else None
        outs = gather_answers(ask, requests, [n for n in range(len(requests)) if n // G in mine])
        failed = sum(o.score is None for o in outs)
        if failed > cfg.judge.max_failed_fraction * len(outs):
            raise JudgeFailure(f"step {step}: the reward model could not score {failed} of {len(outs)} responses "
                               f"(first: {next(o.error for o in outs if o.error)}); more than "
                               f"judge.max_failed_fraction={cfg.judge.max_failed_fraction}")
        rewards = reward_matrix([o.score for o in outs], G)
        d = score_preferences(rewards)
        return Scores(preferences=d, columns={"reward": rewards.reshape(-1).tolist()}, metrics={
            "win_rate_vs_group": win_rate(d), "judge_pairs": 0, "failed_pairs": failed,
            "reward_mean": float(rewards.mean()), "reward_std": float(rewards.std(dim=-1).mean()),
            "judge_tokens": sum(o.tokens for o in outs)})

    def close(self) -> None:
        if self.scorer is not None:
            self.scorer.close()


def reward_model_dir(path: str, target: Path) -> Path:
    """The reward model as the 🤗 directory the scorer loads: converted once, by rank 0 alone."""
    return shared_hf_dir(path, target)


def pairwise_task(cfg: PairwiseRLHFConfig, tokenizer) -> RLTask:
    prompts, texts = load_policy_prompts(cfg, tokenizer)
    source = PAIRWISE_JUDGES.get(cfg.judge.kind)(cfg, prompts)
    return RLTask(ids=[f"p{i}" for i in range(len(prompts))], texts=texts, source=source)


def run(cfg: PairwiseRLHFConfig) -> dict[str, Any]:
    tokenizer = start_policy(cfg, "the policy to align (🤗, native or run dir)")
    task = pairwise_task(cfg, tokenizer)
    state = build_policy(cfg, tokenizer, cfg.generation.stop)
    history = run_policy(cfg, state, task)
    return history[-1] if history else {}


def win_rate(d: torch.Tensor) -> float:
    """Mean share of its group a sample beats (d_ij > 0), over every sample of the step."""
    return float(((d > 0).float().sum(-1) / (d.shape[-1] - 1)).mean())


def reward_matrix(scores: Sequence[float | None], G: int) -> torch.Tensor:
    """[groups, G] rewards; a response that could not be scored gets its group's mean (no push either way)."""
    r = torch.tensor([float("nan") if s is None else s for s in scores], dtype=torch.float64).view(-1, G)
    known = ~torch.isnan(r)
    mean = torch.where(known, r, 0.0).sum(-1, keepdim=True) / known.sum(-1, keepdim=True).clamp(min=1)
    return torch.where(known, r, mean).to(torch.get_default_dtype())


def score_preferences(rewards: torch.Tensor) -> torch.Tensor:
    """[groups, G, G] preference matrix d_ij = r_i − r_j of pointwise rewards (skew-symmetric)."""
    return rewards.unsqueeze(-1) - rewards.unsqueeze(-2)


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
