"""Generation (sampling) config shared by eval, synth, GRPO rollouts and the judge client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.registry import ENGINES, SCORERS


@dataclass
class GenerationConfig:
    """Which engine generates, and how it samples (defaults: Think-RM's evaluation settings)."""

    backend: str = "vllm"
    """vllm (offline engine, GPU), openai (endpoint list), hf (🤗 transformers, CPU tests),
    scripted (the embedded arithmetic task's scripted teacher: quickstart/tests only), reward_model
    (a Bradley-Terry reward model scores both responses, the higher wins: eval and robustness)."""
    model: Optional[str] = None
    """🤗 directory of the judge for vllm/hf (None: the stage's model.hf_path); served model name for openai."""
    endpoints: Optional[str] = None
    """openai: comma-separated base URLs or a file with one per line (what judge_servers.sbatch writes)."""
    api_key: Optional[str] = None
    """openai: bearer key (or env THINKRM_JUDGE_API_KEY)."""
    mode: str = "completions"
    """openai: completions (we render the chat template) or chat (the server does)."""
    temperature: float = 0.6
    top_p: float = 1.0
    max_new_tokens: int = 16384
    stop: Optional[List[str]] = None
    """Stop strings (vLLM strips them from the text; the default relies on the end-of-turn token)."""
    max_concurrency: int = 64
    request_timeout_s: float = 600.0
    max_retries: int = 5
    tensor_parallel_size: int = 1
    """vllm: GPUs per engine."""
    gpu_memory_utilization: float = 0.85
    max_model_len: Optional[int] = None
    enforce_eager: Optional[bool] = None
    """vllm: run without compilation / CUDA graphs. None: this host's default (eager on CPU, where the
    compiled engine's warm-up costs minutes; CUDA graphs on GPU) — ``generation/vllm_args.py``."""
    batch_size: int = 16
    """hf and the megatron rollout sampler: prompts per batch."""
    kv_cache: bool = True
    """megatron rollout sampler: KV-cached decoding (false: recompute the whole sequence every token)."""

    def validate(self) -> None:
        if self.backend not in ENGINES and self.backend not in SCORERS:
            raise ConfigError(f"unknown generation backend {self.backend!r} (generation.backend); valid names: "
                              f"{ENGINES.names() + SCORERS.names()}")
        if self.backend == "openai" and not self.endpoints:
            raise ConfigError("generation.backend=openai needs generation.endpoints (URLs or an endpoints file)")
        self.check_sampling()

    def check_sampling(self) -> None:
        """The sampling knobs every engine (and the RL rollout engines, which ignore ``backend``) needs."""
        if not 0 <= self.temperature:
            raise ConfigError(f"generation.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"generation.top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"generation.max_new_tokens must be >= 1, got {self.max_new_tokens}")
