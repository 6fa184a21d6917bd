"""Top-level structured configs, one per stage, registered with Hydra's ConfigStore.

Each ``conf/<stage>.yaml`` starts from its schema here (``defaults: [<stage>_schema,
...]``), so Hydra type-checks every key: a mistyped override such as
``optim.learning_rate=1e-5`` fails with "Key 'learning_rate' not in 'OptimConfig'"
instead of being silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.generation import GenerationConfig
from nemo_thinkrm.config.registry import (ADVANTAGES, DATASETS, PAIRWISE_JUDGES, POLICY_LOSSES, REWARDS,
                                          ROLLOUT_ENGINES, SCORERS)
from nemo_thinkrm.config.model import ModelConfig
from nemo_thinkrm.config.optim import OptimConfig
from nemo_thinkrm.config.parallel import ParallelConfig, RecomputeConfig
from nemo_thinkrm.config.rl import check_pg_options


@dataclass
class RunConfig:
    """Fields every stage shares."""

    run_dir: str = "runs/default"
    """Where config.yaml, metrics.jsonl, checkpoints and logs go."""
    seed: int = 1234
    model: ModelConfig = field(default_factory=ModelConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    layer_backend: str = "auto"
    """auto (Transformer Engine on GPU, megatron local layers on CPU), te, or local."""

    def validate(self) -> None:
        self.model.validate()


@dataclass
class CheckpointConfig:
    """When and how training checkpoints are written (see checkpoint/training_state.py)."""

    save_interval: int = 0
    """Save every N steps (0: only at the end)."""
    keep_last: int = 2
    """Keep the newest K complete checkpoints."""
    resume: bool = True
    """Continue from ``run_dir/checkpoints/latest`` when it exists (requeue-safe)."""
    fail_after_step: Optional[int] = None
    """Fault injection for tests: exit hard (like a killed job) right after this step's save."""


@dataclass
class TrainConfig(RunConfig):
    """Fields every training stage shares."""

    optim: OptimConfig = field(default_factory=OptimConfig)
    recompute: RecomputeConfig = field(default_factory=RecomputeConfig)
    train_iters: int = 100
    """Optimizer steps."""
    micro_batch_size: int = 1
    global_batch_size: int = 8
    """Sequences per optimizer step over all data-parallel ranks (gradient accumulation fills the rest)."""
    seq_length: int = 512
    log_interval: int = 1
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def validate(self) -> None:
        super().validate()
        self.optim.validate()
        if self.train_iters < 1:
            raise ConfigError(f"train_iters must be >= 1, got {self.train_iters}")
        if self.global_batch_size % self.micro_batch_size != 0:
            raise ConfigError(f"global_batch_size ({self.global_batch_size}) must be a multiple of "
                              f"micro_batch_size ({self.micro_batch_size})")

    def microbatches_per_rank(self, dp_size: int) -> int:
        per_step = self.micro_batch_size * dp_size
        if self.global_batch_size % per_step != 0:
            raise ConfigError(f"global_batch_size ({self.global_batch_size}) must be a multiple of "
                              f"micro_batch_size × data-parallel size ({self.micro_batch_size}×{dp_size})")
        return self.global_batch_size // per_step


@dataclass
class SFTDataConfig:
    train_path: Optional[str] = None
    """SFT JSONL/parquet (``thinkrm synth`` output or any chat data; file, glob or directory)."""
    val_path: Optional[str] = None
    """Validation file; None: hold out ``val_fraction`` of the training samples."""
    val_fraction: float = 0.0
    over_length: str = "truncate"
    """Samples longer than seq_length: truncate (cut the response tail) or drop; always counted."""
    packing: bool = True
    """Pack several samples per sequence (block-diagonal attention); false pads each sample."""
    max_bad_fraction: float = 0.5


@dataclass
class SFTConfig(TrainConfig):
    """Warm-up SFT on long chain-of-thought traces."""

    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    num_epochs: Optional[int] = None
    """If set, train_iters = epochs × (packed sequences per epoch // global_batch_size)."""
    eval_interval: int = 0
    """Validation loss every N steps (0: only at the end, when there is validation data)."""

    def validate(self) -> None:
        super().validate()
        if not self.data.train_path:
            raise ConfigError("data.train_path is required (an SFT JSONL/parquet, e.g. from thinkrm synth)")
        if self.data.over_length not in ("truncate", "drop"):
            raise ConfigError(f"data.over_length={self.data.over_length!r} is not one of ['truncate', 'drop']")
        cp = self.parallel.context_parallel_size
        if cp > 1 and self.seq_length % (2 * cp) != 0:
            raise ConfigError(f"seq_length ({self.seq_length}) must be a multiple of 2 × "
                              f"parallel.context_parallel_size ({2 * cp}): each CP rank holds 2 chunks of it")
        if cp > 1 and self.data.packing and self.micro_batch_size != 1:
            raise ConfigError(f"packed SFT with context parallelism runs one packed row per micro-batch (THD); "
                              f"set micro_batch_size=1, got {self.micro_batch_size}")



@dataclass
class DataConfig:
    """A preference dataset: adapter name + local path (air-gapped) or hub id."""

    name: str = "judgebench"
    """Adapter: helpsteer2_preference, helpsteer3, rewardbench, rm_bench, judgebench, skywork_preference, generic."""
    path: Optional[str] = None
    """Local file, glob or directory (JSONL/JSON/parquet); takes precedence over hub_id."""
    hub_id: Optional[str] = None
    """🤗 hub dataset id (None: the adapter's default)."""
    split: str = "test"
    field_map: Dict[str, str] = field(default_factory=dict)
    """generic adapter: our field name → the file's column."""
    limit: Optional[int] = None
    """Use only the first N records (quick looks)."""
    max_bad_fraction: float = 0.5
    """More bad rows than this fraction is an error, not a skip."""

    def validate(self) -> None:
        DATASETS.check(self.name, "data.name")


@dataclass
class RMDataConfig(DataConfig):
    """Preference pairs for a Bradley-Terry reward model: any adapter (the fields of ``DataConfig``),
    or ``path=builtin:arithmetic:N`` for the embedded task with its own held-out pairs."""

    name: str = "generic"
    split: str = "train"
    val_path: Optional[str] = None
    """Held-out pairs (same adapter); None: ``val_fraction`` of the training pairs (builtin: its own)."""
    val_fraction: float = 0.05
    use_margin: bool = False
    """Margin loss: subtract the preference strength's magnitude (1..3) from the reward gap."""


@dataclass
class RewardModelConfig(TrainConfig):
    """A Bradley-Terry reward model on the megatron ``GPTModel`` (``thinkrm rm``)."""

    data: RMDataConfig = field(default_factory=RMDataConfig)
    eval_interval: int = 0
    """Held-out accuracy every N steps (0: only at the end)."""

    def validate(self) -> None:
        super().validate()
        if not self.data.path and not self.data.hub_id:
            raise ConfigError("data.path (or data.hub_id) is required: preference pairs, or builtin:arithmetic:N")
        self.data.validate()
        if self.parallel.context_parallel_size > 1:
            raise ConfigError(f"thinkrm rm reads each response's last token; context parallelism "
                              f"(parallel.context_parallel_size={self.parallel.context_parallel_size}) would cut "
                              "it away from its rank: use 1")
        if self.parallel.sequence_parallel:
            raise ConfigError("thinkrm rm's reward head is replicated over TP ranks and needs full hidden states: "
                              "set parallel.sequence_parallel=false")


@dataclass
class VotingConfig:
    m: int = 1
    """Samples per prompt (seeds 0..m-1); accuracy is reported for every m' ≤ m."""


@dataclass
class EvalConfig(RunConfig):
    """Evaluate a judge on preference benchmarks."""

    data: DataConfig = field(default_factory=DataConfig)
    template: str = "reasoning_binary"
    """A name in conf/templates/ or a path to your own .jinja file."""
    swap: str = "random"
    """random (seeded coin per pair), none (chosen always A), both (every pair in both orders)."""
    voting: VotingConfig = field(default_factory=VotingConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    max_prompt_tokens: int = 4096
    """Prompts longer than this are counted and reported as over-length, not judged."""
    chunk_size: int = 256
    """Requests per generation call; predictions.jsonl is appended after each (resume granularity)."""

    def validate(self) -> None:
        super().validate()
        self.data.validate()
        self.generation.validate()
        if self.swap not in ("random", "none", "both"):
            raise ConfigError(f"swap={self.swap!r} is not one of ['random', 'none', 'both']")
        if self.voting.m < 1:
            raise ConfigError(f"voting.m must be >= 1, got {self.voting.m}")


@dataclass
class RobustnessConfig(EvalConfig):
    """Master-key false-positive rates of a judge (``thinkrm robustness``)."""

    keys: List[str] = field(default_factory=list)
    """Names from ``data/master_keys.py: MASTER_KEYS`` (empty: all of them)."""
    swap: str = "none"
    """Both positions are built explicitly; keep ``none`` so the report can say which position fools."""


@dataclass
class BestOfNConfig(RunConfig):
    """Pick the best of N responses per prompt with a judge (``thinkrm best-of-n``)."""

    data_path: Optional[str] = None
    """Candidate sets (``data/candidates.py``): prompt + ``responses`` (+ ``best``/``correct``), or
    RewardBench 2's ``chosen``/``rejected`` lists, or ``builtin:arithmetic:N[:K]``."""
    limit: Optional[int] = None
    max_bad_fraction: float = 0.5
    strategy: str = "knockout"
    """knockout (N − 1 comparisons), all_pairs (Copeland over every pair), scores (reward models)."""
    both_orders: bool = True
    """all_pairs: judge each pair in both orders and average (cancels position bias)."""
    template: str = "reasoning_binary"
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    """The judge: a generating engine (vllm, openai, hf) for knockout / all_pairs, reward_model for scores."""
    max_prompt_tokens: int = 8192
    """Comparisons whose judge prompt is longer are not asked (a tie, counted)."""
    chunk_size: int = 64
    """Items per judge batch; ``best_of_n.jsonl`` is appended after each (resume granularity)."""

    def validate(self) -> None:
        super().validate()
        self.generation.validate()
        if not self.data_path:
            raise ConfigError("data_path is required (candidate sets, or builtin:arithmetic:N)")
        if self.strategy not in RANKING_STRATEGIES:
            raise ConfigError(f"strategy={self.strategy!r} is not one of {list(RANKING_STRATEGIES)}")
        scorer = self.generation.backend in SCORERS
        if scorer != (self.strategy == "scores"):
            raise ConfigError(f"strategy={self.strategy!r} with generation.backend={self.generation.backend!r}: a "
                              "reward model ranks by its scores (strategy=scores), a generative judge by "
                              "comparisons (knockout or all_pairs)")
        if self.chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1, got {self.chunk_size}")


RANKING_STRATEGIES = ("knockout", "all_pairs", "scores")
"""``genrm/ranking.py: STRATEGIES``."""


@dataclass
class SynthConfig(EvalConfig):
    """Teacher reasoning traces for SFT (Think-RM's warm-up data)."""

    samples_per_pair: int = 4
    """M traces per training pair from the teacher."""
    keep: str = "longest"
    """Which correct trace to keep per pair: longest (Think-RM), shortest or random."""
    output: Optional[str] = None
    """SFT JSONL to write (default: run_dir/sft.jsonl)."""

    def validate(self) -> None:
        super().validate()
        if self.keep not in ("longest", "shortest", "random"):
            raise ConfigError(f"keep={self.keep!r} is not one of ['longest', 'shortest', 'random']")


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
    clip_eps: float = 0.2
    clip_eps_high: Optional[float] = None
    dual_clip_c: Optional[float] = None
    kl_coef: float = 1.0e-3
    kl_estimator: str = "k3"
    policy_loss: str = "ppo_clip"
    """A name in ``config/registry.py: POLICY_LOSSES``: ppo_clip (one ratio per token) or gspo (one per sample;
    use it with aggregation=seq_mean_token_mean and GSPO's small clip range, e.g. clip_eps=3e-4)."""
    aggregation: str = "token_mean"
    """A name in ``config/registry.py: AGGREGATIONS``: token_mean or seq_mean_token_mean."""
    advantage: str = "grpo"
    """A name in ``config/registry.py: ADVANTAGES``; it must read the kind of score the recipe's reward
    source gives (grpo: per-sample rewards; pairwise: a preference matrix)."""
    scale_by_std: bool = True
    """Divide by the group's spread (GRPO's std; the pairwise root); false: the centred score alone."""
    drop_uniform_groups: bool = False
    """Zero the advantages of groups whose rewards are all equal (no signal) — beyond the paper."""
    dynamic_sampling_rounds: int = 0
    """DAPO's dynamic sampling: up to this many extra rollout rounds (of prompts_per_step fresh prompts
    each) per step, keeping groups whose scores differ until the batch is full (0: off; the cheap
    variant is drop_uniform_groups)."""
    mask_truncated: bool = False
    """DAPO's overlong filtering: a sample cut at generation.max_new_tokens gets no advantage, so its
    unfinished text neither is rewarded nor punished (``masked_truncated`` in metrics)."""
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
        POLICY_LOSSES.check(self.policy_loss, "policy_loss")
        check_pg_options(self.clip_eps, self.clip_eps_high, self.dual_clip_c, self.kl_coef, self.aggregation,
                         self.kl_estimator)
        self.generation.check_sampling()
        if self.dynamic_sampling_rounds < 0:
            raise ConfigError(f"dynamic_sampling_rounds must be >= 0, got {self.dynamic_sampling_rounds}")
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
    reward: str = "binary"
    """A name in ``config/registry.py: REWARDS``: binary (1/0) or multiclass (1 / 0.5 / 0) reproduce the paper."""
    reward_weights: Dict[str, float] = field(default_factory=dict)
    """Instead of ``reward``: a weighted sum of registered rewards, e.g. ``{binary: 1.0, format_bonus: 0.1}``."""
    reward_options: Dict[str, float] = field(default_factory=dict)
    """Keyword arguments every reward receives besides ``n_tokens`` and ``max_new_tokens``, e.g.
    ``{overlong_window: 256}`` for overlong_penalty, ``{target: 512}`` for length_penalty."""
    prompts_per_step: int = 512
    group_size: int = 8
    kl_coef: float = 1.0e-4
    def validate(self) -> None:
        super().validate()
        self.data.validate()
        for name in (dict(self.reward_weights) or {self.reward: 1.0}):
            REWARDS.check(name, "reward_weights" if self.reward_weights else "reward")


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


QUICKSTART_STAGES: tuple[str, ...] = ("synth", "eval", "sft", "grpo", "robustness", "policy_sft", "pairwise_rlhf")


@dataclass
class QuickstartConfig(RunConfig):
    """The embedded tiny pipeline behind ``make quickstart``: task → synth → SFT → GRPO →
    pairwise RLHF, with held-out evaluations between. ``model`` is the judge's
    architecture (built from scratch); each stage runs as ``thinkrm <stage>`` on its
    ``tiny_*`` recipe, with the overrides below."""

    max_operand: int = 9
    """Task size: "What is a + b?" with 0 <= a, b <= max_operand."""
    train_pairs: int = 4000
    heldout_pairs: int = 200
    sft_iters: int = 600
    grpo_iters: int = 20
    voting_m: int = 5
    eval_temperature: float = 1.0
    robustness_pairs: int = 16
    """Held-out pairs the GRPO judge is shown master keys on (× 9 keys × 2 positions)."""
    policy_model: ModelConfig = field(default_factory=ModelConfig)
    """The tiny policy pairwise RLHF aligns (its tokenizer must be the judge's)."""
    policy_sft_iters: int = 150
    policy_error_rate: float = 0.5
    """Share of wrong answers in the policy's SFT data: what pairwise RLHF should fix."""
    rlhf_iters: int = 8
    judge_servers: int = 1
    pretrained: Optional[str] = None
    """A ``thinkrm models`` name (e.g. smollm2-135m-instruct): the judge starts from that real model, with
    its own tokenizer and chat template, instead of a tiny one built from scratch (``model`` is then unused)."""
    wording: str = "short"
    """How the task's responses read: short ("7 + 5 = 12.") or explained (a few sentences around the claim)."""
    template: str = "compact_binary"
    """The judge prompt template of every stage."""
    judge_engine: str = "hf"
    """What evaluates the judge: hf (🤗 transformers) or vllm (the offline engine)."""
    rollout_engine: str = "megatron"
    """What samples GRPO's rollouts: megatron or vllm."""
    judge_max_new_tokens: int = 64
    policy: bool = True
    """Also run the policy half (a tiny policy's SFT, then pairwise RLHF against the served GRPO judge)."""
    overrides: Dict[str, List[str]] = field(default_factory=dict)
    """Extra Hydra overrides per stage: synth, eval, sft, grpo, robustness, policy_sft, pairwise_rlhf."""

    def validate(self) -> None:
        super().validate()
        self.policy_model.validate()
        for name in ("max_operand", "train_pairs", "heldout_pairs", "sft_iters", "grpo_iters", "voting_m",
                     "robustness_pairs", "policy_sft_iters", "rlhf_iters", "judge_servers", "judge_max_new_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pretrained is None and self.max_operand > 14:
            raise ConfigError(f"max_operand={self.max_operand}: results must stay below 32, the numbers the "
                              "tiny tokenizer keeps whole (use <= 14, or a pretrained judge)")
        if self.pretrained is not None and self.policy:
            raise ConfigError("the policy half runs with a tiny judge only (its policy shares the tiny tokenizer): "
                              "set policy=false with pretrained")
        if self.wording not in ("short", "explained"):
            raise ConfigError(f"wording={self.wording!r} is not one of ['short', 'explained']")
        if self.judge_engine not in ("hf", "vllm"):
            raise ConfigError(f"judge_engine={self.judge_engine!r} is not one of ['hf', 'vllm']")
        ROLLOUT_ENGINES.check(self.rollout_engine, "rollout_engine")
        if self.eval_temperature < 0:
            raise ConfigError(f"eval_temperature must be >= 0, got {self.eval_temperature}")
        if not 0 <= self.policy_error_rate <= 1:
            raise ConfigError(f"policy_error_rate must be in [0, 1], got {self.policy_error_rate}")
        unknown = sorted(set(self.overrides) - set(QUICKSTART_STAGES))
        if unknown:
            raise ConfigError(f"overrides for unknown stages {unknown}; valid: {list(QUICKSTART_STAGES)}")


SCHEMAS = {
    "sft_schema": SFTConfig,
    "rm_schema": RewardModelConfig,
    "grpo_schema": GRPOConfig,
    "pairwise_rlhf_schema": PairwiseRLHFConfig,
    "eval_schema": EvalConfig,
    "robustness_schema": RobustnessConfig,
    "best_of_n_schema": BestOfNConfig,
    "synth_schema": SynthConfig,
    "quickstart_schema": QuickstartConfig,
}


def register_schemas() -> None:
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for name, node in SCHEMAS.items():
        cs.store(name=name, node=node)
