"""What every stage's config shares: the run (directory, seed, model, parallel layout) and, for
training stages, the optimizer, batch sizes and checkpointing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import ModelConfig
from nemo_thinkrm.config.optim import OptimConfig
from nemo_thinkrm.config.parallel import ParallelConfig, RecomputeConfig


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
