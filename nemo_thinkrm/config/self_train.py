"""``thinkrm self-train``'s config (GRAM-R² self-training, ``recipes/self_train.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from nemo_thinkrm.config.data import DataConfig
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.run import RunConfig

SELF_TRAIN_STEPS: tuple[str, ...] = ("teacher", "synth", "sft", "eval")
"""The stage kinds a round is made of (``teacher``: the teacher's ``synth`` of the traced pairs, ``synth``: the
proving model's); ``recipes``, ``overrides`` and ``launch`` are keyed by them."""


@dataclass
class SelfTrainConfig(RunConfig):
    """Self-training a reasoning judge from few traced pairs, rationale-free labeled pairs and
    unlabeled pairs (GRAM-R², "Self-Training Generative Foundation Reward Models for Reward
    Reasoning"). Every step is a ``thinkrm`` stage run on the recipe named in ``recipes``."""

    start: Optional[str] = None
    """Where the proving model and the judge start: a 🤗 directory or checkpoint (its own tokenizer),
    or None to build the ``sft`` recipe's architecture from scratch (the tiny recipe)."""
    task: Optional[str] = None
    """``arithmetic``: the embedded arithmetic-judging task makes ``pool`` and ``heldout`` (tiny recipe);
    None: read them from ``pool`` and ``heldout``."""
    task_pairs: int = 2000
    max_operand: int = 9
    pool: DataConfig = field(default_factory=lambda: DataConfig(name="generic"))
    """The preference pairs to learn from; their labels are used for the traced and labeled shares
    only; the unlabeled share's labels are hidden (read for the report's pseudo-label accuracy)."""
    heldout: DataConfig = field(default_factory=lambda: DataConfig(name="generic"))
    heldout_pairs: int = 200
    """With ``task``: how many held-out pairs the task sets aside."""
    traced_share: float = 0.1
    """Share of the pool a teacher writes traces for (the proving model's SFT data, and the judge's)."""
    labeled_share: float = 0.0
    """Share of the pool used with its labels but without traces (the proving model writes them)."""
    unlabeled_limit: Optional[int] = None
    """At most this many of the remaining pairs are pseudo-labeled each round (None: all)."""
    teacher_model: Optional[str] = None
    """The teacher's model (its ``synth``'s ``model.hf_path``); None: the ``teacher`` recipe's own (the tiny
    recipe's scripted teacher reads the answers off the prompt)."""
    template: str = "compact_binary"
    """The judge's template (never shows the label)."""
    proving_template: str = "proving_compact_binary"
    """The proving model's template: the judge's pair plus the preferred response."""
    rounds: int = 2
    """K: self-training rounds over the unlabeled pairs after round 0 (traced + labeled only)."""
    votes: int = 2
    """Verdicts per order (seeds) the judge gives each unlabeled pair; both orders are always asked."""
    min_agreement: float = 0.75
    """Keep a pseudo-label when at least this share of all its votes agree and each order's majority does."""
    label_temperature: float = 1.0
    prover_sft_iters: int = 300
    judge_sft_iters: int = 300
    round_sft_iters: int = 200
    """SFT iterations of each self-training round."""
    round_start: str = "start"
    """What each round's judge is trained from: ``start`` (the model round 0 started from, on the labeled rows
    plus this round's pseudo-labeled ones: no drift from round to round, and with ``round_sft_iters`` equal to
    ``judge_sft_iters`` round 0 is the labeled-data-alone baseline at the same steps) or ``previous`` (the last
    round's judge, fine-tuned further)."""
    heldout_votes: int = 3
    baseline: bool = True
    """Also train a judge on the traced + labeled rows alone for as many SFT iterations as the last
    round's judge had in all (the fair comparison the report draws)."""
    recipes: Dict[str, str] = field(default_factory=lambda: {"teacher": "synth", "synth": "synth", "sft": "sft",
                                                              "eval": "eval"})
    """Stage kind → the ``--config-name`` it runs."""
    overrides: Dict[str, List[str]] = field(default_factory=dict)
    """Stage kind → extra Hydra overrides for every run of it; ``teacher`` names the teacher's engine and model
    (e.g. ``[generation.backend=vllm, model.hf_path=/models/teacher]``)."""
    launch: Dict[str, str] = field(default_factory=dict)
    """Stage kind → command prefix, e.g. ``{sft: "torchrun --nproc-per-node 8"}`` (default: python)."""
    fail_after_round: Optional[int] = None
    """Stop after this round as a killed job would (exit 17; tests of resuming at a round boundary)."""

    def validate(self) -> None:
        super().validate()
        if self.task not in (None, "arithmetic"):
            raise ConfigError(f"task={self.task!r} is not one of [None, 'arithmetic']")
        if self.task is None:
            if not (self.pool.path or self.pool.hub_id):
                raise ConfigError("pool.path (or pool.hub_id) is required without task=arithmetic")
            if not (self.heldout.path or self.heldout.hub_id):
                raise ConfigError("heldout.path (or heldout.hub_id) is required without task=arithmetic")
        self.pool.validate()
        self.heldout.validate()
        for name in ("traced_share", "labeled_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.traced_share == 0:
            raise ConfigError("traced_share must be > 0: the proving model learns from traced pairs")
        if self.traced_share + self.labeled_share >= 1:
            raise ConfigError(f"traced_share + labeled_share = {self.traced_share + self.labeled_share} leaves no "
                              "unlabeled pairs (must be < 1)")
        if not 0.5 < self.min_agreement <= 1:
            raise ConfigError(f"min_agreement must be in (0.5, 1], got {self.min_agreement}")
        for name in ("task_pairs", "heldout_pairs", "votes", "prover_sft_iters", "judge_sft_iters",
                     "round_sft_iters", "heldout_votes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.round_start not in ("start", "previous"):
            raise ConfigError(f"round_start={self.round_start!r} is not one of ['start', 'previous']")
        if self.rounds < 0:
            raise ConfigError(f"rounds must be >= 0, got {self.rounds}")
        if self.unlabeled_limit is not None and self.unlabeled_limit < 1:
            raise ConfigError(f"unlabeled_limit must be >= 1 or null, got {self.unlabeled_limit}")
        for table in ("recipes", "overrides", "launch"):
            unknown = sorted(set(getattr(self, table)) - set(SELF_TRAIN_STEPS))
            if unknown:
                raise ConfigError(f"{table} has unknown stage kinds {unknown}; valid: {list(SELF_TRAIN_STEPS)}")
        missing = sorted(set(SELF_TRAIN_STEPS) - set(self.recipes))
        if missing:
            raise ConfigError(f"recipes must name a config for {missing}")
        if self.template == self.proving_template:
            raise ConfigError("template and proving_template must differ: the judge is never shown the label")
