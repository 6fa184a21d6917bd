"""The training loop every trainer shares: resume → (batches → step → log → save)* → final save.

Trainers supply what differs — how the micro-batches of step N are made and what
the loss is — so SFT, GRPO and pairwise RLHF read the same top to bottom
(style point 8). Batches are a pure function of the step (and of state the
trainer keeps in ``TrainState.data_state``), which is what makes resume exact.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from nemo_thinkrm.checkpoint.training_state import Checkpointer, TrainState
from nemo_thinkrm.config.stages import TrainConfig
from nemo_thinkrm.metrics_log import MetricsLogger
from nemo_thinkrm.training.resume import config_yaml, resume
from nemo_thinkrm.training.engine import Batch, LossFn, StepResult, train_step, unwrap

logger = logging.getLogger(__name__)


class InjectedFault(RuntimeError):
    """Raised by ``checkpoint.fail_after_step``; the CLI exits with code 17 (tests simulate a killed job).

    A clean exception rather than ``os._exit``: megatron's checkpoint writer keeps a
    multiprocessing manager that only shuts down on a normal exit, and what the
    test needs — the on-disk state after step k and nothing after — is the same.
    """

    exit_code = 17


@dataclass
class LoopParts:
    """What a trainer hands the loop (built in its setup, style point 8)."""

    chunks: list[torch.nn.Module]
    optimizer: Any
    scheduler: Any
    batches_for_step: Callable[[int, TrainState], list[Batch]]
    loss_fn: LossFn
    tokens_in: Callable[[list[Batch]], int]
    """Tokens processed by this rank's micro-batches (for tokens/s)."""
    tokenizer: Any = None
    run_config_yaml: Optional[str] = None
    """The resolved run config stored in every checkpoint (default: ``cfg`` as YAML)."""
    validate: Optional[Callable[[int], dict[str, float]]] = None
    """Validation metrics at a step (None: no validation)."""
    eval_interval: int = 0
    """Validate every N steps (0: only after the last step)."""


def run_training(cfg: TrainConfig, parts: LoopParts, log: MetricsLogger) -> list[dict[str, float]]:
    """Train ``cfg.train_iters`` steps (resuming if a checkpoint exists); returns step metrics."""
    import torch.distributed as dist

    ckpt = Checkpointer(Path(cfg.run_dir) / "checkpoints", keep_last=cfg.checkpoint.keep_last)
    module = unwrap(parts.chunks[0])
    run_config = parts.run_config_yaml or config_yaml(cfg)
    state = resume(ckpt, module, parts.optimizer, parts.scheduler, cfg, run_config) or TrainState()
    history = []
    dp = dist.get_world_size() // max(1, module.config.tensor_model_parallel_size *
                                      module.config.pipeline_model_parallel_size)
    for step in range(state.step + 1, cfg.train_iters + 1):
        mbs = parts.batches_for_step(step, state)
        t0 = time.time()
        result: StepResult = train_step(parts.chunks, parts.optimizer, parts.scheduler, mbs, parts.loss_fn)
        dt = time.time() - t0
        metrics = {"loss": result.stats["loss_sum"] / max(result.stats["tokens"], 1.0),
                   "lr": result.lr, "grad_norm": result.grad_norm,
                   "tokens_per_s": parts.tokens_in(mbs) * dp / dt, "step_time_s": dt}
        if result.skipped:
            metrics["skipped"] = 1
        history.append(metrics)
        state.step = step
        state.consumed_samples += cfg.global_batch_size
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
            log.close()
            raise InjectedFault(f"fault injection: stopping after step {step} (checkpoint.fail_after_step)")
    return history
