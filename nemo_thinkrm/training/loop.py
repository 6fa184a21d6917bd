"""The training loop every trainer shares: resume → (step → log → validate → save)* → final save.

Trainers supply what differs — one step (``LoopParts.step_fn``): SFT's trains on the
micro-batches of its data plan (``training/supervised.py``), an RL recipe's rolls out, scores
and updates (``trainers/policy.py``) — so SFT, GRPO and pairwise RLHF share resume,
logging, checkpoints and fault injection. Each step is a pure function of the step
number (and of state the trainer keeps in ``TrainState.data_state``), which is what
makes resume exact.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from nemo_thinkrm.checkpoint.training_state import Checkpointer, TrainState
from nemo_thinkrm.config.errors import InjectedFault
from nemo_thinkrm.config.run import TrainConfig
from nemo_thinkrm.metrics_log import MetricsLogger
from nemo_thinkrm.training.resume import resume, write_run_config
from nemo_thinkrm.training.engine import unwrap

logger = logging.getLogger(__name__)


@dataclass
class LoopParts:
    """What a trainer hands the loop: its model, optimizer and one step."""

    chunks: list[torch.nn.Module]
    optimizer: Any
    scheduler: Any
    step_fn: Callable[[int, TrainState], dict[str, float]]
    """Run step N (1-based) and return its metrics; may record its data position in ``TrainState``."""
    tokenizer: Any = None
    run_config_yaml: Optional[str] = None
    """The resolved run config stored in every checkpoint (default: written now from ``cfg``)."""
    validate: Optional[Callable[[int], dict[str, float]]] = None
    """Validation metrics at a step (None: no validation)."""
    eval_interval: int = 0
    """Validate every N steps (0: only after the last step)."""
    samples_per_step: Optional[int] = None
    """Samples one step consumes (default ``cfg.global_batch_size``)."""


def run_training(cfg: TrainConfig, parts: LoopParts) -> list[dict[str, float]]:
    """Train ``cfg.train_iters`` steps (resuming if a checkpoint exists); returns step metrics.

    Every trainer goes through here: resume from ``latest`` (command line wins, changes
    logged), then per step: run it, log (``log_interval``), validate (``eval_interval``),
    checkpoint (``checkpoint.save_interval``, always after the last step, with the run
    config), and stop at ``checkpoint.fail_after_step`` as a killed job would.
    """
    ckpt = Checkpointer(Path(cfg.run_dir) / "checkpoints", keep_last=cfg.checkpoint.keep_last)
    module = unwrap(parts.chunks[0])
    run_config = parts.run_config_yaml or write_run_config(cfg)
    state = resume(ckpt, module, parts.optimizer, parts.scheduler, cfg, run_config) or TrainState()
    log = MetricsLogger(cfg.run_dir, total_steps=cfg.train_iters)
    samples_per_step = parts.samples_per_step or cfg.global_batch_size
    history = []
    try:
        for step in range(state.step + 1, cfg.train_iters + 1):
            metrics = parts.step_fn(step, state)
            history.append(metrics)
            state.step = step
            state.consumed_samples += samples_per_step
            if step % cfg.log_interval == 0 or step == cfg.train_iters:
                log.log(step, metrics)
            if parts.validate is not None and (
                    (parts.eval_interval and step % parts.eval_interval == 0) or step == cfg.train_iters):
                log.log(step, parts.validate(step), kind="val")
            interval = cfg.checkpoint.save_interval
            if (interval and step % interval == 0) or step == cfg.train_iters:
                state.scheduler = parts.scheduler.state_dict()
                ckpt.save(state, module, parts.optimizer, cfg.model, tokenizer=parts.tokenizer,
                          run_config=run_config)
            if cfg.checkpoint.fail_after_step == step:
                raise InjectedFault(f"fault injection: stopping after step {step} (checkpoint.fail_after_step)")
    finally:
        log.close()
    return history
