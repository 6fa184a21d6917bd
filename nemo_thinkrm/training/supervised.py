"""The supervised recipe, written once: SFT and reward models differ only in their data plan, how
rows become a micro-batch, the loss and what the loss counts (``SupervisedRecipe``).

``train_supervised`` does the rest the same way for both: the optimizer and LR schedule, this DP
rank's micro-batches of step N from the epoch plan (``training/epochs.py``), the step with its
metrics (loss per counted unit, tokens/s and model FLOP/s over all DP ranks), held-out stats, and
the one training loop (``training/loop.py``: resume, log, checkpoint).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Optional

import torch

from nemo_thinkrm.checkpoint.training_state import TrainState
from nemo_thinkrm.config.run import TrainConfig
from nemo_thinkrm.runtime.device import peak_memory_gb
from nemo_thinkrm.runtime.distributed import ParallelContext
from nemo_thinkrm.training.engine import (
    Batch,
    LossFn,
    StepResult,
    build_optimizer,
    configure_for_training,
    train_step,
    uses_te_layers,
)
from nemo_thinkrm.training.epochs import EpochPlan
from nemo_thinkrm.training.flops import segment_lengths, training_flops
from nemo_thinkrm.training.loop import LoopParts, run_training


@dataclass
class SupervisedRecipe:
    """What one supervised recipe brings."""

    plan: EpochPlan
    """Every epoch's rows, in order (a pure function of seed and epoch)."""
    make_batch: Callable[..., Batch]
    """(rows, *, te) -> one micro-batch as this rank's model needs it (``te``: Transformer Engine layers)."""
    loss: LossFn
    count_key: str = "tokens"
    """What the loss is a mean over (a key of the loss stats): tokens, pairs."""
    validate: Optional[Callable[[Callable[[list], Batch]], dict[str, float]]] = None
    """(to_batch) -> held-out metrics (None: no held-out data)."""
    flops_kwargs: dict = field(default_factory=dict)
    """``training_flops`` options: ``cp_size`` (SFT), ``outputs=1`` (a reward head reads one position)."""
    tokens_dp_size: Optional[int] = None
    """Ranks over which a step's tokens are spread (default: the DP size; SFT: DP × CP)."""
    extra_metrics: Optional[Callable[[dict[str, float]], dict[str, float]]] = None


def train_supervised(cfg: TrainConfig, ctx: ParallelContext, chunks: list[torch.nn.Module], tokenizer: Any,
                     run_config_yaml: str, recipe: SupervisedRecipe) -> list[dict[str, float]]:
    """Train ``chunks`` (built, start weights loaded) on ``recipe`` for ``cfg.train_iters`` steps."""
    configure_for_training(chunks)
    optimizer, scheduler = build_optimizer(chunks, cfg.optim, cfg.parallel, cfg.model.params_dtype, cfg.train_iters)
    n_micro = cfg.microbatches_per_rank(ctx.dp_size)
    to_batch = partial(recipe.make_batch, te=uses_te_layers(chunks))

    def batches_for_step(step: int, state: TrainState) -> list[Batch]:
        return recipe.plan.micro_batches(step, state, dp_rank=ctx.dp_rank, dp_size=ctx.dp_size,
                                         micro_batch=cfg.micro_batch_size, n_micro=n_micro, to_batch=to_batch)

    step_fn = supervised_step(
        chunks, optimizer, scheduler, batches_for_step, recipe.loss,
        tokens_in=lambda mbs: sum(int((b["segment_ids"] > 0).sum()) for b in mbs),
        dp_size=recipe.tokens_dp_size or ctx.dp_size,
        flops_in=lambda mbs: sum(training_flops(cfg.model, segment_lengths(b["segment_ids"]), **recipe.flops_kwargs)
                                 for b in mbs),
        count_key=recipe.count_key, extra_metrics=recipe.extra_metrics)
    validate = (lambda step: recipe.validate(to_batch)) if recipe.validate is not None else None
    parts = LoopParts(chunks=chunks, optimizer=optimizer, scheduler=scheduler, step_fn=step_fn, tokenizer=tokenizer,
                      run_config_yaml=run_config_yaml, validate=validate, eval_interval=cfg.eval_interval)
    return run_training(cfg, parts)


def supervised_step(chunks: list[torch.nn.Module], optimizer: Any, scheduler: Any,
                    batches_for_step: Callable[[int, TrainState], list[Batch]], loss_fn: LossFn,
                    tokens_in: Callable[[list[Batch]], int], dp_size: int,
                    flops_in: Optional[Callable[[list[Batch]], float]] = None, count_key: str = "tokens",
                    extra_metrics: Optional[Callable[[dict[str, float]], dict[str, float]]] = None
                    ) -> Callable[[int, TrainState], dict]:
    """A step that trains on the micro-batches a data plan gives for step N (SFT, reward models):
    loss per unit (``count_key`` of the loss stats: tokens, pairs), learning rate, gradient norm,
    tokens/s and model FLOP/s (``training/flops.py``) over all data-parallel ranks, plus what
    ``extra_metrics`` derives from the summed stats."""
    def step_fn(step: int, state: TrainState) -> dict[str, float]:
        mbs = batches_for_step(step, state)
        t0 = time.time()
        result: StepResult = train_step(chunks, optimizer, scheduler, mbs, loss_fn)
        dt = time.time() - t0
        metrics = {"loss": result.stats["loss_sum"] / max(result.stats[count_key], 1.0),
                   "lr": result.lr, "grad_norm": result.grad_norm,
                   "tokens_per_s": tokens_in(mbs) * dp_size / dt, "step_time_s": dt}
        if flops_in is not None:
            metrics["model_flops_per_s"] = flops_in(mbs) * dp_size / dt
        peak = peak_memory_gb()
        if peak is not None:  # GPU: what to hold training/memory.py's estimate against
            metrics["peak_memory_gb"] = peak
        if extra_metrics is not None:
            metrics.update(extra_metrics(result.stats))
        if result.skipped:
            metrics["skipped"] = 1
        return metrics

    return step_fn
