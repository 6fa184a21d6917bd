"""The judging recipes' configs: eval (accuracy with voting@m), robustness (master keys), best-of-N
and synth (teacher traces for SFT)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, List, Optional

from nemo_thinkrm.config.data import DataConfig
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.generation import GenerationConfig
from nemo_thinkrm.config.registry import SCORERS
from nemo_thinkrm.config.run import RunConfig


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
    writes_training_data: ClassVar[bool] = False
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
        if self.data.master_key_negatives and not self.writes_training_data:
            raise ConfigError("data.master_key_negatives adds training pairs; an evaluation reads its data as it is "
                              "(use it with thinkrm synth and grpo)")


@dataclass
class RobustnessConfig(EvalConfig):
    """Master-key false-positive rates of a judge (``thinkrm robustness``)."""

    keys: List[str] = field(default_factory=list)
    """Names from ``data/master_keys.py: MASTER_KEYS`` (empty: all of them)."""
    swap: str = "both"
    """A generative judge sees every key in both positions (the prompt builder places the responses, so
    ``both`` is the only setting under which the key is ever shown as A); a reward model ignores it."""

    def validate(self) -> None:
        super().validate()
        if self.swap != "both" and self.generation.backend not in SCORERS:
            raise ConfigError(f"robustness shows each master key in both positions: swap must be 'both', got "
                              f"{self.swap!r}")


@dataclass
class BestOfNConfig(RunConfig):
    """Pick the best of N responses per prompt with a judge (``thinkrm best-of-n``)."""

    data_path: Optional[str] = None
    """Candidate sets (``data/candidates.py``): prompt + ``responses`` (+ ``best``/``correct``), or
    RewardBench 2's ``chosen``/``rejected`` lists, or ``builtin:arithmetic:N[:K]``."""
    limit: Optional[int] = None
    max_bad_fraction: float = 0.5
    strategy: str = "knockout"
    """knockout (N − 1 comparisons), all_pairs (Copeland over every pair), sort (a merge sort with the judge as
    comparator, both orders per comparison: GRAM-R²'s listwise ranking), scores (reward models)."""
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
                              "comparisons (knockout, all_pairs or sort)")
        if self.chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1, got {self.chunk_size}")


RANKING_STRATEGIES = ("knockout", "all_pairs", "sort", "scores")
"""``genrm/ranking.py: STRATEGIES``."""


@dataclass
class SynthConfig(EvalConfig):
    """Teacher reasoning traces for SFT (Think-RM's warm-up data)."""

    writes_training_data: ClassVar[bool] = True
    samples_per_pair: int = 4
    """M traces per training pair from the teacher."""
    keep: str = "longest"
    """Which correct trace to keep per pair: longest (Think-RM), shortest or random."""
    output: Optional[str] = None
    """SFT JSONL to write (default: run_dir/sft.jsonl)."""
    train_template: Optional[str] = None
    """The template of the SFT rows' user turn when it is not the one the teacher was asked with:
    GRAM-R²'s preference-proving model writes rationales from prompts that show the label
    (``template=proving_compact_binary``), and the judge learns them from prompts that do not
    (``train_template=compact_binary``); same verdict mode, same pair order."""

    def validate(self) -> None:
        super().validate()
        if self.keep not in ("longest", "shortest", "random"):
            raise ConfigError(f"keep={self.keep!r} is not one of ['longest', 'shortest', 'random']")
