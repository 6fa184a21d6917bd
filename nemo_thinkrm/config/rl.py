"""The RL recipes' configs: what GRPO and pairwise RLHF share (``PolicyRLConfig``: rollouts, the
``loss:`` group, advantages, batch filters), each recipe's own (``GRPOConfig``, ``PairwiseRLHFConfig``
with its ``JudgeConfig``), and the policy-gradient option checks.

Torch-free on purpose: ``validate`` runs before any model is built, so a mistyped
``loss.kl_estimator`` fails at start-up, not inside the loss after the first rollout;
``algorithms/pg_loss.py`` calls ``check_pg_options`` for direct use. Names are checked against
``config/registry.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from nemo_thinkrm.config.data import DataConfig
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.generation import GenerationConfig
from nemo_thinkrm.config.registry import (ADVANTAGES, AGGREGATIONS, BATCH_FILTERS, KL_ESTIMATORS, PAIRWISE_JUDGES,
                                          POLICY_LOSSES, REWARDS, ROLLOUT_ENGINES)
from nemo_thinkrm.config.run import TrainConfig


def _number(x: object) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)


def check_pg_options(clip_eps: float, clip_eps_high: Optional[float], dual_clip_c: Optional[float],
                     kl_coef: float, aggregation: str, kl_estimator: str = "k3") -> tuple[float, float]:
    """Validated (ε_low, ε_high); ConfigError naming the option for impossible settings."""
    if not _number(clip_eps) or not 0 < clip_eps < 1:
        raise ConfigError(f"clip_eps must be in (0, 1) so that 1 - clip_eps > 0, got {clip_eps!r}")
    eps_high = clip_eps if clip_eps_high is None else clip_eps_high
    if not _number(eps_high) or not eps_high > 0:
        raise ConfigError(f"clip_eps_high must be > 0, got {clip_eps_high!r}")
    if dual_clip_c is not None and (not _number(dual_clip_c) or not dual_clip_c > 1):
        raise ConfigError(f"dual_clip_c must be > 1 (it caps the ratio for A < 0), got {dual_clip_c!r}")
    if not _number(kl_coef) or kl_coef < 0:
        raise ConfigError(f"kl_coef must be a finite number >= 0, got {kl_coef!r}")
    AGGREGATIONS.check(aggregation, "aggregation")
    KL_ESTIMATORS.check(kl_estimator, "kl_estimator")
    return float(clip_eps), float(eps_high)


@dataclass
class LossConfig:
    """``loss:``: which policy-gradient loss, how it is aggregated, its clip range and the KL term."""

    name: str = "ppo_clip"
    """A name in ``config/registry.py: POLICY_LOSSES``: ppo_clip (one ratio per token) or gspo (one per sample;
    use it with aggregation=seq_mean_token_mean and GSPO's small clip range, e.g. clip_eps=3e-4)."""
    aggregation: str = "token_mean"
    """A name in ``config/registry.py: AGGREGATIONS``: token_mean or seq_mean_token_mean."""
    clip_eps: float = 0.2
    clip_eps_high: Optional[float] = None
    """DAPO's clip-higher: the ratio's upper bound 1 + clip_eps_high (null: clip_eps)."""
    dual_clip_c: Optional[float] = None
    """Dual-clip PPO: the loss of a negative-advantage token is at most c·|A|."""
    kl_coef: float = 1.0e-3
    """The KL to the frozen reference, as a loss term (0: no reference log-probs are used)."""
    kl_estimator: str = "k3"

    def validate(self) -> None:
        POLICY_LOSSES.check(self.name, "loss.name")
        check_pg_options(self.clip_eps, self.clip_eps_high, self.dual_clip_c, self.kl_coef, self.aggregation,
                         self.kl_estimator)

    def options(self) -> dict:
        """The keyword arguments every ``POLICY_LOSSES`` entry takes."""
        return {"clip_eps": self.clip_eps, "clip_eps_high": self.clip_eps_high, "dual_clip_c": self.dual_clip_c,
                "kl_coef": self.kl_coef, "kl_estimator": self.kl_estimator, "aggregation": self.aggregation}


@dataclass
class PolicyRLConfig(TrainConfig):
    """What GRPO (the judge) and pairwise RLHF (a policy) share: G samples per prompt from the
    current policy, the clipped policy-gradient step with a KL loss to the frozen reference,
    and how the rollouts are sampled. ``global_batch_size`` is the PPO mini-batch (sequences
    per optimizer step); one rollout batch of ``prompts_per_step × group_size`` sequences gives
    several updates."""

    prompts_per_step: int = 64
    group_size: int = 4
    rollout_engine: str = "megatron"
    """megatron: sample from the training model itself (KV-cached; any TP, PP=1). vllm: a vLLM engine in
    every training process (any TP/PP/DP; its own TP is generation.tensor_parallel_size) that gets the
    policy's weights in memory before each rollout and sleeps during training (GPU)."""
    refit_bucket_mb: float = 512.0
    """rollout_engine=vllm: the weight hand-over gathers the policy's shards this many MB at a time
    (its extra memory is about 3 buckets per rank)."""
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    """Rollout sampling: temperature, top_p, max_new_tokens, stop strings."""
    max_prompt_tokens: int = 4096
    """Longer prompts are left out (with a warning); it also sizes the vLLM engine's context."""
    loss: LossConfig = field(default_factory=LossConfig)
    """The policy-gradient loss, its clip range and KL term (``config/rl.py``)."""
    advantage: str = "grpo"
    """A name in ``config/registry.py: ADVANTAGES``; it must read the kind of score the recipe's reward
    source gives (grpo: per-sample rewards; pairwise: a preference matrix)."""
    scale_by_std: bool = True
    """Divide by the group's spread (GRPO's std; the pairwise root); false: the centred score alone."""
    filters: List[str] = field(default_factory=list)
    """Names in ``config/registry.py: BATCH_FILTERS``, applied in order to the step's advantages:
    drop_uniform_groups (groups whose scores are all equal teach nothing), mask_truncated (DAPO's
    overlong filtering: a sample cut at generation.max_new_tokens gets no advantage),
    dynamic_sampling (DAPO: groups without signal are replaced by fresh prompts' groups first)."""
    resample_rounds: int = 3
    """The most extra rollout rounds (prompts_per_step fresh prompts each) per step that a refilling
    filter (dynamic_sampling) may draw to fill the batch with groups it keeps."""
    ppo_epochs: int = 1
    offload_reference: bool = True
    """GPU: keep the frozen reference's weights in host memory between its one use per step
    (its log-probs are computed once per rollout batch). No effect on CPU."""
    log_rollouts: int = 4
    """Samples of every step written as text, with their reward, to ``run_dir/rollouts.jsonl`` (0: none)."""

    def validate(self) -> None:
        super().validate()
        if self.log_rollouts < 0:
            raise ConfigError(f"log_rollouts must be >= 0, got {self.log_rollouts}")
        if self.parallel.context_parallel_size > 1:
            raise ConfigError("parallel.context_parallel_size > 1 is for SFT on long traces; rollouts and "
                              "log-probs of GRPO / pairwise RLHF are not split over CP ranks — use TP/PP/DP")
        ROLLOUT_ENGINES.check(self.rollout_engine, "rollout_engine")
        ADVANTAGES.check(self.advantage, "advantage")
        self.loss.validate()
        for name in self.filters:
            BATCH_FILTERS.check(name, "filters")
        self.generation.check_sampling()
        if self.resample_rounds < 0:
            raise ConfigError(f"resample_rounds must be >= 0, got {self.resample_rounds}")
        if self.ppo_epochs < 1:
            raise ConfigError(f"ppo_epochs must be >= 1, got {self.ppo_epochs}")
        if self.rollout_engine == "megatron" and self.parallel.pipeline_model_parallel_size > 1:
            raise ConfigError("rollout_engine=megatron samples from one model chunk (pipeline_model_parallel_size=1); "
                              "use rollout_engine=vllm for a pipelined policy")
        if self.rollout_engine == "vllm" and self.generation.tensor_parallel_size < 1:
            raise ConfigError(f"generation.tensor_parallel_size (the vLLM rollout engine's TP) must be >= 1, "
                              f"got {self.generation.tensor_parallel_size}")
        if self.refit_bucket_mb <= 0:
            raise ConfigError(f"refit_bucket_mb must be > 0, got {self.refit_bucket_mb}")
        if self.group_size < 2:
            raise ConfigError(f"group_size must be >= 2 (samples are compared within a group), got {self.group_size}")
        if (self.prompts_per_step * self.group_size) % self.global_batch_size != 0:
            raise ConfigError(f"prompts_per_step × group_size ({self.prompts_per_step}×{self.group_size}) must be "
                              f"a multiple of global_batch_size ({self.global_batch_size})")


@dataclass
class GRPOConfig(PolicyRLConfig):
    """Rule-based RL of the judge (GRPO): reward = right verdict (Think-RM stage 2)."""

    data: DataConfig = field(default_factory=DataConfig)
    template: str = "reasoning_binary"
    swap: str = "random"
    """random: each pair in one order, by a coin per pair; none: chosen shown as A; both: each group
    holds the pair in both orders (samples alternate A/B and B/A), ``position_consistency`` logged."""
    reward: str = "binary"
    """A name in ``config/registry.py: REWARDS``: binary (1/0) or multiclass (1 / 0.5 / 0) reproduce the paper;
    consistent (J1, needs swap=both): 1 only when the verdicts in both orders of the pair are right."""
    reward_weights: Dict[str, float] = field(default_factory=dict)
    """Instead of ``reward``: a weighted sum of registered rewards, e.g. ``{binary: 1.0, format_bonus: 0.1}``."""
    reward_options: Dict[str, float] = field(default_factory=dict)
    """Keyword arguments every reward receives besides ``n_tokens`` and ``max_new_tokens``, e.g.
    ``{overlong_window: 256}`` for overlong_penalty, ``{target: 512}`` for length_penalty."""
    prompts_per_step: int = 512
    group_size: int = 8
    loss: LossConfig = field(default_factory=lambda: LossConfig(kl_coef=1.0e-4))

    def validate(self) -> None:
        super().validate()
        self.data.validate()
        for name in (dict(self.reward_weights) or {self.reward: 1.0}):
            REWARDS.check(name, "reward_weights" if self.reward_weights else "reward")
        if self.swap not in ("random", "none", "both"):
            raise ConfigError(f"swap={self.swap!r} is not one of ['random', 'none', 'both']")
        if self.swap == "both" and self.group_size % 2:
            raise ConfigError(f"swap=both puts both orders of a pair in one group: group_size must be even, "
                              f"got {self.group_size}")


@dataclass
class JudgeConfig:
    """The judge that compares the policy's responses: a served GenRM, or a reward model's scores."""

    kind: str = "genrm"
    """genrm (served generative judge, pairwise verdicts) or reward_model (a Bradley-Terry reward model
    scores every response in the trainer's processes; d_ij = r_i − r_j, so the pairwise advantage is
    GRPO's (r − mean) / std). Compare GenRM and BT alignment on the same run with the same prompts."""
    endpoints: Optional[str] = None
    """Comma-separated URLs or the endpoints file ``serve-judge`` / judge_servers.sbatch writes."""
    api_key: Optional[str] = None
    """Bearer key (or env THINKRM_JUDGE_API_KEY)."""
    model: Optional[str] = None
    """The judge's 🤗 directory: its tokenizer renders prompts; also the served model name.
    kind=reward_model: the reward model (🤗 *ForSequenceClassification, native checkpoint or thinkrm rm run)."""
    batch_size: int = 16
    """kind=reward_model: responses per scoring batch."""
    template: str = "reasoning_binary"
    think_prefix: bool = True
    both_orders: bool = False
    """Judge every pair in both orders and average (cancels position bias) — beyond the paper."""
    length_normalize: bool = True
    """Binary verdicts score ±1/len(judge output), as in the paper."""
    temperature: float = 0.6
    max_new_tokens: int = 2048
    max_concurrency: int = 64
    request_timeout_s: float = 600.0
    max_retries: int = 5
    max_failed_fraction: float = 0.5
    """Stop the run when more of a step's judge requests than this fail (servers down or
    crashing): advantages from mostly-failed verdicts are noise, not a signal."""
    cache: bool = True
    """Reuse the verdict for an identical (judge prompt, sampling) instead of asking again."""
    cache_path: Optional[str] = None
    """Persist the cache as JSONL (default: run_dir/judge_cache.jsonl when cache is on)."""


@dataclass
class PairwiseRLHFConfig(PolicyRLConfig):
    """Policy optimisation from pairwise judge verdicts (Think-RM's pairwise RLHF)."""

    prompt_path: Optional[str] = None
    """Chat prompts (JSONL/parquet): "prompt" (text) or "messages" ending with the user turn."""
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    advantage: str = "pairwise"

    def validate(self) -> None:
        super().validate()
        if not self.prompt_path:
            raise ConfigError("prompt_path is required (chat prompts, JSONL/parquet)")
        PAIRWISE_JUDGES.check(self.judge.kind, "judge.kind")
        if self.judge.kind == "reward_model":
            if not self.judge.model:
                raise ConfigError("judge.kind=reward_model needs judge.model (a thinkrm rm run, native checkpoint "
                                  "or 🤗 *ForSequenceClassification directory)")
        elif not self.judge.endpoints or not self.judge.model:
            raise ConfigError("judge.endpoints and judge.model are required (start judges with thinkrm serve-judge)")
