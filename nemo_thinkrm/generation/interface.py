"""One generation interface, several engines.

Every engine turns a list of ``GenerationRequest`` into one ``GenerationOutput``
per request, in order, and never drops one: a request that could not be served
comes back with ``error`` set and empty ``text``, so callers count and score it.

Example (what evaluation sends for one pair judged with seeds 0 and 1)::

    [GenerationRequest(id="judgebench:e302…:s0", prompt="<|im_start|>user\\n…<|im_start|>assistant\\n<think>\\n", seed=0),
     GenerationRequest(id="judgebench:e302…:s1", prompt="…same…", seed=1)]
    → [GenerationOutput(id="judgebench:e302…:s0", text="The question asks … </think>\\n<answer>B</answer>",
                        output_tokens=412, finish_reason="stop"), …]

Engines: ``vllm`` (offline engine, GPU), ``openai`` (any OpenAI-compatible
endpoint list: ``vllm serve``, ``trtllm-serve``), ``hf`` (🤗 transformers on CPU, for
tests and tiny models). Engines import their heavy dependencies lazily.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, Sequence, runtime_checkable

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.generation import ROLLOUT_ENGINE_NAMES, GenerationConfig


@dataclass(frozen=True)
class GenerationRequest:
    id: str
    """Unique per (prompt, seed); outputs carry it back."""
    prompt: str
    """Fully rendered prompt text (chat template applied, Think-RM's ``<think>\\n`` opener included)."""
    seed: int = 0
    messages: Optional[tuple] = None
    """The same prompt as chat messages, for engines in chat mode (server applies the template)."""


@dataclass
class GenerationOutput:
    """What every engine returns for one request (the one result type).

    Rollout engines also fill the token ids: trainers score the tokens that were
    sampled, never a re-tokenised text.
    """

    id: str
    text: str
    output_tokens: int
    finish_reason: str
    error: Optional[str] = None
    latency_s: float = 0.0
    prompt_ids: list[int] = field(default_factory=list)
    output_ids: list[int] = field(default_factory=list)
    """Generated ids kept: EOS excluded, the token that completed a stop string included."""
    cached: bool = False
    """Answered from a cache (``generation/judge.py``), not generated now."""


class Generator(abc.ABC):
    """An engine. ``generate`` is synchronous; engines parallelise internally."""

    @abc.abstractmethod
    def generate(self, requests: Sequence[GenerationRequest], progress: bool = False) -> list[GenerationOutput]:
        """One output per request, in order; failures have ``error`` set."""

    def close(self) -> None:
        """Release servers/engines/memory (optional)."""


ENGINES = {  # keys must equal config.generation.ENGINE_NAMES
    "vllm": "nemo_thinkrm.generation.vllm_offline:VLLMOfflineGenerator",
    "openai": "nemo_thinkrm.generation.openai_generator:OpenAIGenerator",
    "hf": "nemo_thinkrm.generation.hf_local:HFGenerator",
    "scripted": "nemo_thinkrm.generation.scripted:ScriptedTeacher",
}


def build_generator(cfg: GenerationConfig, model_path: Optional[str]) -> Generator:
    """Instantiate the configured engine (imports it only now)."""
    import importlib

    cfg.validate()
    if cfg.backend not in ENGINES:
        raise ConfigError(f"generation.backend={cfg.backend!r} scores responses and generates no text; this stage "
                          f"needs one of {sorted(ENGINES)}")
    module, cls = ENGINES[cfg.backend].split(":")
    return getattr(importlib.import_module(module), cls)(cfg, model_path)


@dataclass
class RolloutSetup:
    """What a rollout engine may need to start beside a trainer (each takes what it uses)."""

    chunks: list
    """The policy's megatron model chunks (the megatron sampler samples from them directly)."""
    tokenizer: Any
    generation: GenerationConfig
    eos_token_ids: list[int]
    stop_strings: list[str]
    hf_dir: Optional[str] = None
    """A 🤗 copy of the start checkpoint (engines that load 🤗 weights first)."""
    max_model_len: int = 0
    seed: int = 0
    dtype: str = "auto"
    refit_bucket_mb: float = 512.0
    """Weight hand-over bucket (engines that hold their own copy of the weights)."""


@runtime_checkable
class RolloutEngine(Protocol):
    """Sampling for RL trainers: token ids in and out, weights from the trainer's live model.

    ``load_weights_from`` runs before every rollout (a no-op for an engine that samples from
    the training model itself); ``release_memory`` after it, so the engine gives its GPU
    memory back while the trainer updates. All three run on every rank.

    Layout: the world's ranks form ``replicas()[0]`` sampling replicas; each samples only its
    share of a step's prompts and ``gather_shares`` puts every replica's outputs, in replica
    order, on every rank (the megatron sampler's replicas are the trainer's DP replicas; a
    vLLM engine's are ``world / its own TP``).
    """

    def replicas(self) -> tuple[int, int]:
        """(number of sampling replicas, this rank's replica index)."""
        ...

    def gather_shares(self, local: list[GenerationOutput]) -> list[list[GenerationOutput]]:
        ...

    def sample(self, requests: Sequence[GenerationRequest], progress: bool = False) -> list[GenerationOutput]:
        ...

    def load_weights_from(self, module: Any, model_cfg: Any) -> None:
        ...

    def release_memory(self) -> None:
        ...


ROLLOUT_ENGINES = {  # keys must equal config.generation.ROLLOUT_ENGINE_NAMES; each class has from_setup()
    "megatron": "nemo_thinkrm.generation.megatron_sampler:MegatronSampler",
    "vllm": "nemo_thinkrm.generation.vllm_rollout:VLLMRolloutEngine",
}


def build_rollout_engine(name: str, setup: RolloutSetup) -> RolloutEngine:
    """Instantiate the configured rollout engine (imports it only now)."""
    import importlib

    if name not in ROLLOUT_ENGINES:
        raise ConfigError(f"rollout_engine={name!r} is not one of {list(ROLLOUT_ENGINE_NAMES)}")
    module, cls = ROLLOUT_ENGINES[name].split(":")
    return getattr(importlib.import_module(module), cls).from_setup(setup)
