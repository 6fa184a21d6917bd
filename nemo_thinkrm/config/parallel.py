"""Parallel layout, in megatron's own names so cluster users can copy their habits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import ModelConfig


@dataclass
class ParallelConfig:
    """How one model replica is split, and how replicas are grouped."""

    tensor_model_parallel_size: int = 1
    pipeline_model_parallel_size: int = 1
    context_parallel_size: int = 1
    """Splits the sequence across GPUs for long (16k+) contexts; GPU only."""
    sequence_parallel: bool = False
    """Megatron sequence parallelism (needs TP>1 and Transformer Engine); GPU only."""
    use_distributed_optimizer: bool = True
    """Shard optimizer state over data-parallel ranks (megatron's distributed optimizer). Turned
    off at start-up for one data-parallel rank on gloo (CPU); see ``resolve_for``."""
    backend: str = "auto"
    """auto: NCCL when CUDA is available, gloo otherwise."""

    def model_parallel_size(self) -> int:
        return (self.tensor_model_parallel_size * self.pipeline_model_parallel_size
                * self.context_parallel_size)

    def resolve_for(self, data_parallel_size: int, backend: str) -> Optional[str]:
        """Settle what depends on the launched world; returns why something changed, or None.

        With one data-parallel rank the distributed optimizer has nothing to shard, yet every step
        it still all-gathers the parameters and reduce-scatters the gradients over its one-rank
        group. On gloo those copies run on gloo's worker threads, where PyTorch opens an OpenMP
        team of its own; libgomp then counts more threads than cores and stops spinning between
        parallel regions in every team, so each later operator waits for a sleeping worker (seen
        on 2 cores: 24k → 31k tokens/s for the SFT bench, voluntary context switches 49k → 18k,
        ``bench/sft_throughput.py``; libgomp's throttled spin is in its ``env.c``). The plain
        optimizer keeps identical numbers there. On NCCL the collectives run on the GPU, so the
        setting is left as written.
        """
        if self.use_distributed_optimizer and data_parallel_size == 1 and backend == "gloo":
            self.use_distributed_optimizer = False
            return ("parallel.use_distributed_optimizer=false: one data-parallel rank on gloo has no optimizer "
                    "state to shard, and the distributed optimizer's per-step copies on gloo's threads slow "
                    "every CPU operator")
        return None

    def validate(self, model: ModelConfig, world_size: int, cuda: bool) -> None:
        """Check the layout against the model and the number of processes; say what clashes."""
        tp, pp, cp = (self.tensor_model_parallel_size, self.pipeline_model_parallel_size,
                      self.context_parallel_size)
        if self.backend not in ("auto", "nccl", "gloo"):
            raise ConfigError(f"parallel.backend={self.backend!r} is not one of ['auto', 'nccl', 'gloo']")
        for name, value in (("tensor_model_parallel_size", tp),
                            ("pipeline_model_parallel_size", pp),
                            ("context_parallel_size", cp)):
            if value < 1:
                raise ConfigError(f"parallel.{name} must be >= 1, got {value}")
        if world_size % self.model_parallel_size() != 0:
            raise ConfigError(
                f"world size ({world_size}) must be a multiple of TP×PP×CP "
                f"({tp}×{pp}×{cp}={self.model_parallel_size()}); launch more processes or "
                "lower parallel.*_size"
            )
        if model.num_attention_heads % tp != 0:
            raise ConfigError(
                f"model.num_attention_heads ({model.num_attention_heads}) must be a multiple of "
                f"parallel.tensor_model_parallel_size ({tp})"
            )
        groups = model.num_query_groups
        if groups % tp != 0 and tp % groups != 0:
            raise ConfigError(
                f"model.num_query_groups ({groups}) must be a multiple or a divisor of "
                f"parallel.tensor_model_parallel_size ({tp})"
            )
        if model.ffn_hidden_size % tp != 0:
            raise ConfigError(
                f"model.ffn_hidden_size ({model.ffn_hidden_size}) must be a multiple of "
                f"parallel.tensor_model_parallel_size ({tp})"
            )
        if model.num_layers % pp != 0:
            raise ConfigError(
                f"model.num_layers ({model.num_layers}) must be a multiple of "
                f"parallel.pipeline_model_parallel_size ({pp})"
            )
        if not cuda and (cp > 1 or self.sequence_parallel):
            raise ConfigError(
                "parallel.context_parallel_size>1 and parallel.sequence_parallel need GPUs "
                "(Transformer Engine); set them to 1/false on CPU"
            )
        if self.sequence_parallel and tp == 1:
            raise ConfigError("parallel.sequence_parallel=true needs tensor_model_parallel_size > 1")


@dataclass
class RecomputeConfig:
    """Activation recomputation (trades compute for activation memory at long context)."""

    granularity: Optional[str] = None
    """None, "selective" (attention core only) or "full" (whole layers)."""
    method: str = "uniform"
    num_layers: int = 1
