"""One generation interface, several engines.

Every engine turns a list of ``GenerationRequest`` into one ``GenerationOutput``
per request, in order, and never drops one: a request that could not be served
comes back with ``error`` set and empty ``text``, so callers count and score it.

Example (what evaluation sends for one pair judged with seeds 0 and 1)::

    [GenerationRequest(id="judgebench:e302…:s0", prompt="<|im_start|>user\\n…<|im_start|>assistant\\n<think>\\n", seed=0),
     GenerationRequest(id="judgebench:e302…:s1", prompt="…same…", seed=1)]
    → [GenerationOutput(id="judgebench:e302…:s0", text="The question asks … </think>\\n<answer>B</answer>",
                        output_tokens=412, finish_reason="stop"), …]

Engines (``config/registry.py: ENGINES``, one file each): ``vllm`` (``vllm_engine.py``), ``openai``
(any OpenAI-compatible endpoint list: ``vllm serve``, ``trtllm-serve``), ``hf`` (🤗 transformers on
CPU, for tests and tiny models). RL samples through a ``RolloutEngine`` (``ROLLOUT_ENGINES``: the
megatron sampler, the colocated vLLM engine), a ``Generator`` with optional capabilities.
Engines import their heavy dependencies lazily.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.generation import GenerationConfig
from nemo_thinkrm.config.registry import ENGINES, ROLLOUT_ENGINES


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


def build_generator(cfg: GenerationConfig, model_path: Optional[str]) -> Generator:
    """Instantiate the configured engine (imports it only now)."""
    cfg.validate()
    if cfg.backend not in ENGINES:
        raise ConfigError(f"generation.backend={cfg.backend!r} scores responses and generates no text; this stage "
                          f"needs one of {ENGINES.names()}")
    return ENGINES.get(cfg.backend)(cfg, model_path)


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


class RolloutEngine(Generator):
    """An engine RL trainers sample from: token ids in and out (``GenerationOutput.prompt_ids`` /
    ``output_ids``), built by ``from_setup`` beside the trainer.

    Two optional capabilities, with the defaults of an engine that has neither:

    * weight sync — ``load_weights_from`` runs before every rollout and ``release_memory`` after it
      (an engine with its own copy of the weights takes the policy's, then gives its GPU memory back
      while the trainer updates); by default the engine samples from the training model itself.
    * replication — the world's ranks form ``replicas()[0]`` sampling replicas; each samples only
      its share of a step's prompts and ``gather_shares`` puts every replica's outputs, in replica
      order, on every rank (the megatron sampler's replicas are the trainer's DP replicas; a vLLM
      engine's are ``world / its own TP``); by default one replica.

    All of them run on every rank.
    """

    @classmethod
    @abc.abstractmethod
    def from_setup(cls, setup: RolloutSetup) -> "RolloutEngine":
        """Start beside the trainer, taking from ``setup`` what this engine uses."""

    def load_weights_from(self, module: Any, model_cfg: Any) -> None:
        """Take the policy's current weights (default: none to take)."""

    def release_memory(self) -> None:
        """Give memory back to the trainer after a rollout (default: nothing held)."""

    def replicas(self) -> tuple[int, int]:
        """(number of sampling replicas, this rank's replica index)."""
        return 1, 0

    def gather_shares(self, local: list[GenerationOutput]) -> list[list[GenerationOutput]]:
        """Every replica's outputs, in replica order, on every rank."""
        return [local]


def build_rollout_engine(name: str, setup: RolloutSetup) -> RolloutEngine:
    """Instantiate the configured rollout engine (imports it only now)."""
    return ROLLOUT_ENGINES.get(name, "rollout_engine").from_setup(setup)
