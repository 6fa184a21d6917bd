"""The typed core every RL recipe (``grpo.py``, ``pairwise_rlhf.py``) is written over.

One step, ``rl_step``: rollout → reward source → advantages → the policy-gradient update.
A recipe supplies an ``RLTask``: its prompts and a ``RewardSource`` (verdict rules for GRPO; a
served GenRM or a reward model for pairwise RLHF) that turns the step's samples into
``Scores`` — per-sample rewards ``[P, G]`` or a preference matrix ``[P, G, G]``; the config's
``advantage`` names the estimator (``config/registry.py``), which reads the kind of score it
needs. The rest is done here the same way for every recipe: G rollouts per prompt from the
live policy (any ``RolloutEngine``), the old and frozen-reference log-probs, and the clipped
policy-gradient update over PPO mini-batches;
``run_policy`` drives the steps through the one training loop (``training/loop.py``: resume,
log, checkpoint with the run config, fault injection).

Rollouts are a pure function of (model state, step): prompts are chosen from (seed,
step) and every sample has its own seed (``rollout_requests``), so a resumed run
reproduces the uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol, Sequence

import torch

from nemo_thinkrm.checkpoint.convert import load_initial_weights, shared_hf_dir
from nemo_thinkrm.checkpoint.start import start_model_and_tokenizer
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.registry import ADVANTAGES, BATCH_FILTERS, POLICY_LOSSES
from nemo_thinkrm.config.rl import PolicyRLConfig
from nemo_thinkrm.generation.interface import (
    GenerationOutput,
    GenerationRequest,
    RolloutEngine,
    RolloutSetup,
    build_rollout_engine,
)
from nemo_thinkrm.models.builder import build_gpt_model
from nemo_thinkrm.models.tokenizer import stop_token_ids
from nemo_thinkrm.runtime.device import offload_module, on_accelerator, place_module
from nemo_thinkrm.runtime.distributed import init_distributed, is_rank0
from nemo_thinkrm.training.engine import build_engine_model, build_optimizer, configure_for_training, train_step, unwrap
from nemo_thinkrm.training.logprobs import token_logprobs, vocab_parallel_entropy, vocab_parallel_logprobs
from nemo_thinkrm.training.loop import LoopParts, run_training

logger = logging.getLogger("nemo_thinkrm.policy")


@dataclass
class PolicyState:
    """What an RL recipe trains with; built once by ``build_policy``."""

    tokenizer: Any
    chunks: list[torch.nn.Module]
    optimizer: Any
    scheduler: Any
    reference: torch.nn.Module
    """The frozen start model; its log-probs anchor the KL term."""
    reference_offloaded: bool
    engine: RolloutEngine

    @property
    def module(self) -> torch.nn.Module:
        return unwrap(self.chunks[0])


@dataclass
class Scores:
    """What a reward source says about one step's samples (``P`` prompts × ``G`` samples, in rollout order)."""

    rewards: Optional[torch.Tensor] = None
    """[P, G] per-sample rewards (verdict rules, a reward model's scalar)."""
    preferences: Optional[torch.Tensor] = None
    """[P, G, G] skew-symmetric preferences d_ij > 0 when sample i beat sample j (a pairwise judge)."""
    metrics: dict[str, float] = field(default_factory=dict)
    columns: dict[str, list] = field(default_factory=dict)
    """Per-sample values (one list of P·G) written beside the rollouts' text in ``rollouts.jsonl``."""


class RewardSource(Protocol):
    """Turns a step's samples into ``Scores``; every rank calls it and gets the same answer."""

    def score(self, chosen: Sequence[int], samples: Sequence[GenerationOutput], step: int) -> Scores: ...

    def close(self) -> None: ...


@dataclass
class RLTask:
    """What an RL recipe brings to ``rl_step``."""

    ids: list[str]
    """One id per prompt (rollout ids are ``<id>:g<k>``)."""
    texts: list[str | tuple[str, ...]]
    """The prompts, rendered in the policy's chat template; a tuple gives a group its variants in turn
    (sample g gets ``texts[i][g % len]``: GRPO's ``swap=both`` puts a pair's two orders in one group)."""
    source: RewardSource


# ------------------------------------------------------------------ set-up

def start_policy(cfg: PolicyRLConfig, needs: str):
    """Take the architecture from ``model.hf_path``, load the tokenizer, initialise distributed."""
    if not cfg.model.hf_path:
        raise ConfigError(f"model.hf_path is required: {needs}")
    cfg.model, tokenizer = start_model_and_tokenizer(cfg.model, cfg.run_dir)
    init_distributed(cfg.parallel, cfg.model, seed=cfg.seed)
    return tokenizer


def build_policy(cfg: PolicyRLConfig, tokenizer, stop_strings: Optional[list]) -> PolicyState:
    """Trainable policy (DDP, optimizer, LR schedule over every PPO update), the frozen reference
    (its log-probs are computed once per rollout batch) and the rollout engine."""
    chunks = build_engine_model(cfg.model, cfg.parallel, backend=cfg.layer_backend)
    load_initial_weights(unwrap(chunks[0]), cfg.model.hf_path, cfg.model)
    configure_for_training(chunks)
    updates = cfg.prompts_per_step * cfg.group_size // cfg.global_batch_size * cfg.ppo_epochs
    optimizer, scheduler = build_optimizer(chunks, cfg.optim, cfg.parallel, cfg.model.params_dtype,
                                           cfg.train_iters * updates)
    ref = build_gpt_model(cfg.model, cfg.parallel, backend=cfg.layer_backend).eval()
    load_initial_weights(ref, cfg.model.hf_path, cfg.model)
    for p in ref.parameters():
        p.requires_grad_(False)
    offload = bool(cfg.offload_reference) and on_accelerator(ref)
    if offload:
        offload_module(ref)
    engine = build_rollout_engine(cfg.rollout_engine, _rollout_setup(cfg, chunks, tokenizer, stop_strings))
    return PolicyState(tokenizer, chunks, optimizer, scheduler, ref, offload, engine)


def _rollout_setup(cfg: PolicyRLConfig, chunks, tokenizer, stop_strings: Optional[list]) -> RolloutSetup:
    hf_dir = None
    if cfg.rollout_engine == "vllm":
        # the engine starts from a 🤗 copy (converted once, by rank 0); its weights are replaced
        # from megatron before every rollout
        hf_dir = str(shared_hf_dir(cfg.model.hf_path, Path(cfg.run_dir) / "rollout_hf"))
        logger.info("rollouts: colocated vLLM engine for %s (engine TP %d, weights synced in memory)", hf_dir,
                    cfg.generation.tensor_parallel_size)
    stops = stop_strings if stop_strings is not None else (cfg.generation.stop or [])
    return RolloutSetup(chunks=chunks, tokenizer=tokenizer, generation=cfg.generation,
                        eos_token_ids=stop_token_ids(tokenizer), stop_strings=list(stops), hf_dir=hf_dir,
                        max_model_len=min(cfg.max_prompt_tokens + cfg.generation.max_new_tokens,
                                          cfg.model.max_position_embeddings),
                        seed=cfg.seed, dtype=str(cfg.model.params_dtype), refit_bucket_mb=cfg.refit_bucket_mb)


def run_policy(cfg: PolicyRLConfig, state: PolicyState, task: RLTask) -> list[dict[str, float]]:
    """The shared loop (``training/loop.py``) over ``rl_step``; the task's reward source is closed at the end."""
    parts = LoopParts(chunks=state.chunks, optimizer=state.optimizer, scheduler=state.scheduler,
                      step_fn=lambda step, _train_state: rl_step(cfg, state, task, step), tokenizer=state.tokenizer,
                      samples_per_step=cfg.prompts_per_step * cfg.group_size)
    try:
        return run_training(cfg, parts)
    finally:
        task.source.close()


def rl_step(cfg: PolicyRLConfig, state: PolicyState, task: RLTask, step: int) -> dict[str, float]:
    """One RL step: rollouts → scores → advantages → PPO update; the metrics of every phase, timed."""
    t0 = time.time()
    chosen = choose_prompts(len(task.ids), cfg.prompts_per_step, cfg.seed, step)
    samples, rollout_stats = sample_rollouts(cfg, state, task.ids, task.texts, chosen, step)
    t1 = time.time()
    scores = task.source.score(chosen, samples, step)
    for name in cfg.filters:
        keeps = getattr(BATCH_FILTERS.get(name), "refills", None)
        if keeps is not None:
            samples, scores = refill(cfg, state, task, step, samples, scores, rollout_stats, keeps)
    adv = filtered_advantages(cfg, scores, samples)
    log_rollouts(cfg, step, samples, **scores.columns, advantage=adv.tolist())
    t2 = time.time()
    stats = policy_gradient_step(cfg, state, samples, adv)
    return {**scores.metrics, **stats, **rollout_stats, "time_rollout_s": t1 - t0, "time_score_s": t2 - t1,
            "tokens_per_s": stats["response_tokens"] / max(time.time() - t0, 1e-9)}


def filtered_advantages(cfg: PolicyRLConfig, scores: Scores, samples: Sequence[GenerationOutput]) -> torch.Tensor:
    """Scores → [P·G] advantages: the configured estimator fed the kind of score it reads, then the
    configured batch filters in order (each adds its metric to ``scores.metrics``)."""
    fn = ADVANTAGES.get(cfg.advantage)
    x = getattr(scores, fn.reads)
    if x is None:
        raise ConfigError(f"advantage={cfg.advantage!r} reads {fn.reads}, which this recipe's reward source "
                          f"does not give (it gives {'rewards' if scores.rewards is not None else 'preferences'})")
    adv = fn(x, scale_by_std=cfg.scale_by_std)
    if adv.numel() != len(samples):
        raise RuntimeError(f"advantages of shape {tuple(adv.shape)} for {len(samples)} samples")
    truncated = torch.tensor([s.finish_reason == "length" for s in samples]).view(adv.shape)
    for name in cfg.filters:
        adv, metrics = BATCH_FILTERS.get(name)(adv, rewards=scores.rewards, preferences=scores.preferences,
                                               truncated=truncated)
        scores.metrics.update(metrics)
    return adv.reshape(-1)


# ------------------------------------------------------------------ rollouts

def choose_prompts(n: int, k: int, seed: int, step: int, draw: int = 0) -> list[int]:
    """The step's prompts: ``k`` of ``n``, a pure function of (seed, step); ``draw`` r > 0 gives the
    next ``k`` of the same permutation (dynamic sampling's fresh prompts; fewer at its end)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randperm(n, generator=g)[draw * k:(draw + 1) * k].tolist()


def kept_groups(scores: Scores, keeps) -> list[int]:
    """The indices of the groups a refilling filter keeps (``keeps``: its ``refills`` function)."""
    return keeps(scores.rewards, scores.preferences).nonzero().view(-1).tolist()


def take_groups(parts: Sequence[tuple[Sequence[GenerationOutput], Scores]], picks: Sequence[tuple[int, int]],
                G: int) -> tuple[list[GenerationOutput], Scores]:
    """The samples and scores of the (part, group) ``picks``, in that order; metrics from the first part."""
    samples = [parts[p][0][g * G + j] for p, g in picks for j in range(G)]
    first = parts[0][1]

    def stack(field: str) -> Optional[torch.Tensor]:
        if getattr(first, field) is None:
            return None
        return torch.stack([getattr(parts[p][1], field)[g] for p, g in picks])

    columns = {k: [parts[p][1].columns[k][g * G + j] for p, g in picks for j in range(G)] for k in first.columns}
    return samples, Scores(rewards=stack("rewards"), preferences=stack("preferences"), metrics=dict(first.metrics),
                           columns=columns)


def refill(cfg: PolicyRLConfig, state: PolicyState, task: RLTask, step: int, samples: list[GenerationOutput],
           scores: Scores, rollout_stats: dict, keeps) -> tuple[list[GenerationOutput], Scores]:
    """A refilling batch filter's rollouts (``algorithms/filters.py``; DAPO's dynamic sampling, Yu et al.
    2025, arXiv:2503.14476, section 3.2), bounded: up to ``resample_rounds`` more rounds of fresh
    prompts until ``prompts_per_step`` groups that ``keeps`` accepts are found; a batch still short is
    filled with the first round's other groups (the filter then zeroes them), so the update always
    sees ``prompts_per_step × group_size`` samples. The metrics stay the first round's (an unbiased
    look at the policy); rounds and the share of kept groups are added. Every rank runs the same
    rounds (scores are identical on all)."""
    P, G = cfg.prompts_per_step, cfg.group_size
    parts = [(samples, scores)]
    kept = [(0, g) for g in kept_groups(scores, keeps)]
    rounds = 0
    while len(kept) < P and rounds < cfg.resample_rounds:
        more = choose_prompts(len(task.ids), P, cfg.seed, step, draw=rounds + 1)
        if len(more) < P:  # the permutation is used up: no fresh prompts left this step
            break
        rounds += 1
        extra, stats = sample_rollouts(cfg, state, task.ids, task.texts, more, step)
        for key in ("refit_s", "time_generate_s"):
            rollout_stats[key] += stats[key]
        parts.append((extra, task.source.score(more, extra, step)))
        kept += [(rounds, g) for g in kept_groups(parts[-1][1], keeps)]
    n_kept = min(len(kept), P)
    first_round = {g for r, g in kept if r == 0}
    picks = kept[:P] + [(0, g) for g in range(P) if g not in first_round][:P - n_kept]
    samples, merged = take_groups(parts, picks, G)
    merged.metrics.update({"resample_rounds": rounds, "groups_kept": n_kept / P})
    return samples, merged


def rollout_requests(ids: Sequence[str], texts: Sequence, chosen: Sequence[int], group_size: int,
                     step: int) -> list[GenerationRequest]:
    """``group_size`` requests per chosen prompt, each with a seed of its own (step, prompt, sample)."""
    def text(i: int, g: int) -> str:
        t = texts[i]
        return t if isinstance(t, str) else t[g % len(t)]

    return [GenerationRequest(f"{ids[i]}:g{g}", text(i, g), seed=(step * 100_003 + i) * group_size + g)
            for i in chosen for g in range(group_size)]


def replica_share(chosen: Sequence[int], replicas: int, index: int) -> list[int]:
    """One sampling replica's prompts of a step (every ``replicas``-th): a group of G samples
    stays on one replica, so group advantages need no communication until the gather."""
    return list(chosen[index::replicas])


def sample_rollouts(cfg: PolicyRLConfig, state: PolicyState, ids: Sequence[str], texts: Sequence,
                    chosen: Sequence[int], step: int) -> tuple[list[GenerationOutput], dict[str, float]]:
    """G samples for every chosen prompt, in ``chosen`` order, identical on every rank, and the
    rollout's timings (``refit_s``: the weight hand-over; ``time_generate_s``).

    Each sampling replica of the engine (``RolloutEngine.replicas``) samples only its share
    (``replica_share``) with the policy's current weights (the engine gets them first, in
    memory, and gives its memory back to training afterwards); the shares are then gathered.
    Seeds follow the prompt, not the rank, so the result does not depend on the layout.
    """
    engine = state.engine
    n, index = engine.replicas()
    mine = replica_share(chosen, n, index)
    t0 = time.time()
    engine.load_weights_from(state.module, cfg.model)
    t1 = time.time()
    local = engine.generate(rollout_requests(ids, texts, mine, cfg.group_size, step))
    engine.release_memory()
    t2 = time.time()
    logger.info("rollouts: replica %d of %d sampled prompts %s × %d (%d of %d sequences)", index, n, mine,
                cfg.group_size, len(local), len(chosen) * cfg.group_size)
    shares = engine.gather_shares(local)
    G = cfg.group_size
    samples = [shares[k % n][(k // n) * G + g] for k in range(len(chosen)) for g in range(G)]
    expected = [f"{ids[i]}:g{g}" for i in chosen for g in range(G)]
    if [x.id for x in samples] != expected:  # cheap, and a wrong order would silently mis-assign rewards
        raise RuntimeError(f"gathered rollouts are out of order: {[x.id for x in samples][:4]} vs {expected[:4]}")
    return samples, {"refit_s": t1 - t0, "time_generate_s": t2 - t1}


# ------------------------------------------------------------------ update

@contextmanager
def reference_on_device(reference: torch.nn.Module, offloaded: bool) -> Iterator[torch.nn.Module]:
    """The frozen reference, on the GPU only while it is used: with ``offload_reference`` its
    weights (a full model copy, 16 GB for an 8B model in bf16) otherwise sit in host memory,
    which leaves that room to activations and the colocated rollout engine."""
    if not offloaded:
        yield reference
        return
    place_module(reference)
    try:
        yield reference
    finally:
        offload_module(reference)


ROLLOUTS_FILE = "rollouts.jsonl"


def log_rollouts(cfg: PolicyRLConfig, step: int, samples: Sequence[GenerationOutput], **columns: Sequence) -> None:
    """The step's first ``cfg.log_rollouts`` samples as text, with per-sample ``columns`` (reward, verdict,
    advantage), appended to ``run_dir/rollouts.jsonl`` by rank 0: what RL is doing, readable. A resumed
    step writes its rows again (the last rows of a step are the run's)."""
    if cfg.log_rollouts <= 0 or not is_rank0():
        return
    rows = []
    for k, x in enumerate(samples[:cfg.log_rollouts]):
        row = {"step": step, "id": x.id, "text": x.text, "tokens": len(x.output_ids), "finish": x.finish_reason}
        row.update({name: values[k] for name, values in columns.items()})
        rows.append(json.dumps(row, ensure_ascii=False))
    with open(Path(cfg.run_dir) / ROLLOUTS_FILE, "a") as f:
        f.write("".join(r + "\n" for r in rows))


def sequence_multiple(cfg: PolicyRLConfig) -> int:
    """What an RL batch's length must divide by: the TP size under sequence parallelism, whose
    reduce-scatter splits the sequence over the TP ranks (megatron's ``tensor_parallel/mappings.py``
    asserts "First dimension of the tensor should be divisible by tensor parallel size")."""
    par = cfg.parallel
    return par.tensor_model_parallel_size if par.sequence_parallel else 1


def build_batch(samples: Sequence[GenerationOutput], adv: torch.Tensor, pad_id: int,
                multiple: int = 1) -> dict[str, torch.Tensor]:
    """Right-padded prompt+response tensors; targets are the next tokens, the response mask
    covers the positions whose target is a generated token. The length is padded to a multiple
    of ``multiple`` (``sequence_multiple``); right padding changes no log-prob under the causal mask."""
    seqs = [x.prompt_ids + x.output_ids for x in samples]
    width = max(len(q) for q in seqs) - 1
    width = -(-width // multiple) * multiple
    n = len(seqs)
    ids = torch.full((n, width + 1), pad_id, dtype=torch.long)
    mask = torch.zeros(n, width)
    for k, (x, q) in enumerate(zip(samples, seqs)):
        ids[k, :len(q)] = torch.tensor(q)
        mask[k, len(x.prompt_ids) - 1:len(q) - 1] = 1
    return {"input_ids": ids[:, :-1], "targets": ids[:, 1:], "response_mask": mask,
            "advantages": adv.unsqueeze(1) * mask}


def sampling_temperature(cfg: PolicyRLConfig) -> float:
    """The temperature the rollouts were sampled at, which every log-prob of them is taken at: the
    samples come from softmax(logits / T), so the ratio, the KL and the entropy are of that policy (verl's
    actor and TRL's GRPOTrainer divide the logits by it too). Greedy rollouts (T = 0) score at 1."""
    return cfg.generation.temperature if cfg.generation.temperature > 0 else 1.0


def reference_logprobs(cfg: PolicyRLConfig, state: PolicyState, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of the sampled tokens under the rollout policy (old) and the frozen reference."""
    mb, t = cfg.micro_batch_size, sampling_temperature(cfg)
    old = token_logprobs(state.chunks, batch["input_ids"], batch["targets"], temperature=t, micro_batch_size=mb,
                         broadcast=True)
    with reference_on_device(state.reference, state.reference_offloaded) as model:
        ref = token_logprobs([model], batch["input_ids"], batch["targets"], temperature=t, micro_batch_size=mb,
                             broadcast=True)
    return old.detach(), ref.detach()


def pg_loss(cfg: PolicyRLConfig, vocab_size: int, batch, output):
    """The engine calls this with vocab-sharded logits (no labels in the batch). The policy
    entropy on response tokens is logged, not optimised (Think-RM: no entropy bonus)."""
    t = sampling_temperature(cfg)
    logprob = vocab_parallel_logprobs(output, batch["targets"], vocab_size, temperature=t)
    loss_sum, count, stats = POLICY_LOSSES.get(cfg.loss.name)(batch, logprob, **cfg.loss.options())
    entropy = vocab_parallel_entropy(output, vocab_size, temperature=t)
    stats["entropy_sum"] = (entropy * batch["response_mask"]).sum().double()
    return loss_sum, count, stats


def ppo_update(cfg: PolicyRLConfig, state: PolicyState, batch) -> dict[str, float]:
    """``ppo_epochs`` passes over the rollout batch in mini-batches of ``global_batch_size``."""
    from megatron.core import parallel_state as ps

    n = batch["input_ids"].shape[0]
    dp, dp_rank = ps.get_data_parallel_world_size(), ps.get_data_parallel_rank()
    mb, gbs = cfg.micro_batch_size, cfg.global_batch_size
    totals: dict[str, float] = {}
    grad_norms = []
    loss_fn = partial(pg_loss, cfg, cfg.model.vocab_size)
    for epoch in range(cfg.ppo_epochs):
        g = torch.Generator().manual_seed(cfg.seed + epoch)
        order = torch.randperm(n, generator=g)
        for start in range(0, n, gbs):
            mine = order[start:start + gbs][dp_rank::dp]
            mbs = [{k: v[mine[j:j + mb]] for k, v in batch.items()} for j in range(0, len(mine), mb)]
            result = train_step(state.chunks, state.optimizer, state.scheduler, mbs, loss_fn)
            grad_norms.append(result.grad_norm)
            for k, v in result.stats.items():
                totals[k] = totals.get(k, 0.0) + v
    tokens = max(totals.get("tokens", 1.0), 1.0)
    out = {"pg_loss": totals.get("pg_loss_sum", 0.0) / tokens,
           "clip_fraction": totals.get("clipfrac_sum", 0.0) / tokens,
           "grad_norm": sum(grad_norms) / len(grad_norms), "entropy": totals.get("entropy_sum", 0.0) / tokens}
    if "kl_sum" in totals:
        out["kl"] = totals["kl_sum"] / tokens
    return out


def policy_gradient_step(cfg: PolicyRLConfig, state: PolicyState, samples: Sequence[GenerationOutput],
                         advantages: torch.Tensor) -> dict[str, float]:
    """Per-sample advantages → batch → old/reference log-probs → PPO updates; metrics with timings."""
    t0 = time.time()
    batch = build_batch(samples, advantages, state.tokenizer.pad_token_id, sequence_multiple(cfg))
    batch["old_logprob"], batch["ref_logprob"] = reference_logprobs(cfg, state, batch)
    t1 = time.time()
    stats = ppo_update(cfg, state, batch)
    t2 = time.time()
    lengths = torch.tensor([len(x.output_ids) for x in samples], dtype=torch.float)
    return {**stats, "response_length": float(lengths.mean()),
            "truncation_rate": sum(x.finish_reason == "length" for x in samples) / len(samples),
            "lr": state.optimizer.param_groups[0]["lr"], "time_logprob_s": t1 - t0, "time_update_s": t2 - t1,
            "response_tokens": float(batch["response_mask"].sum())}
