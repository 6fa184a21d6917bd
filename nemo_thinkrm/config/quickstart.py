"""The embedded tiny pipeline's config (``examples/quickstart.py``, ``make quickstart``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import ModelConfig
from nemo_thinkrm.config.registry import ROLLOUT_ENGINES
from nemo_thinkrm.config.run import RunConfig

QUICKSTART_STAGES: tuple[str, ...] = ("synth", "eval", "sft", "grpo", "robustness", "policy_sft", "pairwise_rlhf", "rm")


@dataclass
class QuickstartConfig(RunConfig):
    """The embedded tiny pipeline behind ``make quickstart``: task → synth → SFT → GRPO →
    pairwise RLHF, with held-out evaluations between. ``model`` is the judge's
    architecture (built from scratch); each stage runs as ``thinkrm <stage>`` on its
    ``tiny_*`` recipe, with the overrides below."""

    max_operand: int = 9
    """Task size: "What is a + b?" with 0 <= a, b <= max_operand."""
    max_offset: int = 3
    """The wrong response is off by 1..max_offset (``data/synthetic.py: make_task_split``)."""
    train_pairs: int = 4000
    traced_pairs: Optional[int] = None
    """How many of the train pairs get a teacher's reasoning trace (the warm-up SFT data); GRPO learns from
    the labels of all ``train_pairs``, as real GenRM training does (traces are expensive, labels cheap).
    None: every pair is traced."""
    heldout_pairs: int = 200
    sft_iters: int = 600
    grpo_iters: int = 20
    voting_m: int = 5
    eval_temperature: float = 1.0
    robustness_pairs: int = 16
    """Held-out pairs the GRPO judge is shown master keys on (× 9 keys × 2 positions)."""
    master_key_negatives: float = 0.25
    """Share of the judge's training pairs (SFT traces and GRPO) given a content-free negative too
    (``data.master_key_negatives``); the robustness check uses other keys, so it stays held out.
    0 turns it off; docs/robustness.md has the measurements behind 0.25."""
    policy_model: ModelConfig = field(default_factory=ModelConfig)
    """The tiny policy pairwise RLHF aligns (its tokenizer must be the judge's)."""
    policy_sft_iters: int = 400
    policy_error_rate: float = 0.35
    """Mean share of wrong answers in the policy's SFT data (each question has one wrong answer and its own
    rate of giving it, uniform in [0, 2 × this]; ``data/synthetic.py: make_answer_records``): what
    pairwise RLHF should fix. 0.35: about 3 in 10 questions mostly answered wrong."""
    rlhf_iters: int = 60
    rm_iters: int = 300
    """Steps of the Bradley-Terry reward model (``thinkrm rm`` on the labels of all train pairs) that judges
    the second pairwise-RLHF run beside the GenRM's; 0 leaves the baseline out."""
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
    """Extra Hydra overrides per stage: synth, eval, sft, grpo, robustness, policy_sft, pairwise_rlhf (both
    pairwise-RLHF runs, the GenRM's and the reward model's), rm."""

    def validate(self) -> None:
        super().validate()
        self.policy_model.validate()
        for name in ("max_operand", "train_pairs", "heldout_pairs", "sft_iters", "grpo_iters", "voting_m",
                     "robustness_pairs", "policy_sft_iters", "rlhf_iters", "judge_servers", "judge_max_new_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.traced_pairs is not None and not 1 <= self.traced_pairs <= self.train_pairs:
            raise ConfigError(f"traced_pairs must be in 1..train_pairs={self.train_pairs}, got {self.traced_pairs}")
        if self.max_offset < 1:
            raise ConfigError(f"max_offset must be >= 1, got {self.max_offset}")
        if self.pretrained is None and 2 * self.max_operand + self.max_offset > 31:
            raise ConfigError(f"max_operand={self.max_operand}, max_offset={self.max_offset}: values must stay below "
                              "32, the numbers the tiny tokenizer keeps whole (2 x max_operand + max_offset <= 31, "
                              "or a pretrained judge)")
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
        if not 0 <= self.master_key_negatives <= 1:
            raise ConfigError(f"master_key_negatives must be in [0, 1], got {self.master_key_negatives}")
        if self.rm_iters < 0:
            raise ConfigError(f"rm_iters must be >= 0 (0: no Bradley-Terry baseline), got {self.rm_iters}")
        if not 0 <= self.policy_error_rate <= 1:
            raise ConfigError(f"policy_error_rate must be in [0, 1], got {self.policy_error_rate}")
        unknown = sorted(set(self.overrides) - set(QUICKSTART_STAGES))
        if unknown:
            raise ConfigError(f"overrides for unknown stages {unknown}; valid: {list(QUICKSTART_STAGES)}")
