"""The supervised recipes' configs: warm-up SFT on reasoning traces and the Bradley-Terry reward
model (``training/supervised.py`` runs both)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from nemo_thinkrm.config.data import DataConfig
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.run import TrainConfig


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
