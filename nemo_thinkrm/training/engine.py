"""The megatron training engine shared by every trainer (SFT, GRPO, pairwise RLHF).

It owns the DDP-wrapped model, the (distributed) optimizer and the LR schedule,
and runs one optimizer step over a list of micro-batches through megatron's
pipeline schedule. What a loss *is* stays outside: a trainer passes a
``loss_fn(batch, output) -> (loss_sum, count, stats)``.

Loss normalisation: the engine sets megatron's
``calculate_per_token_loss``. Loss functions return a *sum* and the number of
units it sums over (tokens, or sequences for sequence-mean losses); megatron
all-reduces the counts over data-parallel ranks and divides the gradients by the
global count. So the gradient is the same for any micro-batch size, number of
micro-batches or DP size (``tests/sft/test_sft_training.py``, 2 processes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable, Optional

import torch

from nemo_thinkrm.config.model import ModelConfig
from nemo_thinkrm.config.optim import OptimConfig
from nemo_thinkrm.config.parallel import ParallelConfig, RecomputeConfig
from nemo_thinkrm.models.builder import build_gpt_model
from nemo_thinkrm.runtime.device import collective_device, cuda_available, to_device

Batch = dict[str, torch.Tensor]
LossFn = Callable[[Batch, torch.Tensor], tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]


@dataclass
class StepResult:
    """What one optimizer step reports (stats summed over micro-batches and DP ranks)."""

    stats: dict[str, float]
    grad_norm: float
    lr: float
    skipped: bool


def build_engine_model(model_cfg: ModelConfig, parallel: ParallelConfig,
                       recompute: Optional[RecomputeConfig] = None, backend: str = "auto",
                       wrap_ddp: bool = True, head_seed: int = 0) -> list[torch.nn.Module]:
    """This rank's model chunk(s), DDP-wrapped for training; per-token loss mode on."""
    module = build_gpt_model(model_cfg, parallel, backend=backend, recompute=recompute, head_seed=head_seed)
    module.config.calculate_per_token_loss = True
    return ddp_wrap(module, parallel) if wrap_ddp else [module]


def ddp_wrap(module: torch.nn.Module, parallel: ParallelConfig) -> list[torch.nn.Module]:
    """megatron's DDP around a built model (grad buffers are laid out now: change modules before)."""
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig

    ddp_cfg = DistributedDataParallelConfig(
        grad_reduce_in_fp32=True,
        overlap_grad_reduce=False,
        use_distributed_optimizer=parallel.use_distributed_optimizer,
        check_for_nan_in_grad=True,
    )
    return [DistributedDataParallel(config=module.config, ddp_config=ddp_cfg, module=module)]


def unwrap(chunk: torch.nn.Module) -> torch.nn.Module:
    """The GPTModel inside DDP (megatron DDP keeps it in ``.module``)."""
    while hasattr(chunk, "module"):
        chunk = chunk.module
    return chunk


def uses_te_layers(chunks: list[torch.nn.Module]) -> bool:
    """Whether the model runs Transformer Engine layers on a GPU: packed rows then go as THD."""
    return cuda_available() and getattr(unwrap(chunks[0]), "layer_backend", "local") == "te"


def build_optimizer(chunks: list[torch.nn.Module], optim: OptimConfig, parallel: ParallelConfig,
                    params_dtype: str, total_steps: int):
    """megatron's (distributed) Adam and an OptimizerParamScheduler with warm-up + decay."""
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler

    optim.validate()
    bf16 = params_dtype == "bfloat16"
    mcfg = OptimizerConfig(
        optimizer="adam", lr=optim.lr, min_lr=optim.min_lr, weight_decay=optim.weight_decay,
        adam_beta1=optim.adam_beta1, adam_beta2=optim.adam_beta2, adam_eps=optim.adam_eps,
        clip_grad=optim.clip_grad, bf16=bf16, params_dtype=torch.bfloat16 if bf16 else torch.float32,
        use_distributed_optimizer=parallel.use_distributed_optimizer,
    )
    optimizer = get_megatron_optimizer(mcfg, chunks)
    warmup = int(math.floor(optim.warmup_fraction * total_steps))
    decay_style = {"cosine": "cosine", "constant": "constant", "linear": "linear"}[optim.schedule]
    scheduler = OptimizerParamScheduler(
        optimizer, init_lr=0.0 if warmup > 0 else optim.lr, max_lr=optim.lr, min_lr=optim.min_lr,
        lr_warmup_steps=warmup, lr_decay_steps=max(total_steps, warmup + 1), lr_decay_style=decay_style,
        start_wd=optim.weight_decay, end_wd=optim.weight_decay, wd_incr_steps=max(total_steps, 1),
        wd_incr_style="constant")
    return optimizer, scheduler


def _forward_step(loss_fn: LossFn, data_iterator: Iterable[Batch], model: torch.nn.Module):
    # The device boundary of every training, validation and log-prob forward: trainers build
    # micro-batches on the host; the loss function sees the same (moved) batch as the model.
    batch = to_device(next(data_iterator))  # type: ignore[call-overload]
    extra = {"packed_seq_params": batch["packed_seq_params"]} if "packed_seq_params" in batch else {}
    output = model(batch["input_ids"], batch.get("position_ids"), batch.get("attention_mask"),
                   labels=batch.get("labels"), **extra)
    return output, partial(loss_fn, batch)


def run_microbatches(chunks: list[torch.nn.Module], microbatches: list[Batch], loss_fn: LossFn,
                     *, forward_only: bool) -> list[dict[str, torch.Tensor]]:
    """Run forward (and backward) over the micro-batches through megatron's PP schedule.

    All micro-batches must share one shape ``[micro_batch, seq]`` (pipeline buffers
    are sized from it). Returns the loss functions' stats dicts (last stage only).
    """
    from megatron.core.pipeline_parallel import get_forward_backward_func

    if not microbatches:
        return []
    mb, seq = microbatches[0]["input_ids"].shape
    for i, b in enumerate(microbatches):
        if tuple(b["input_ids"].shape) != (mb, seq):
            raise ValueError(f"micro-batch {i} has shape {tuple(b['input_ids'].shape)}, expected {(mb, seq)}")
    fb = get_forward_backward_func()
    return fb(
        forward_step_func=partial(_forward_step, loss_fn),
        data_iterator=iter(microbatches),
        model=chunks,
        num_microbatches=len(microbatches),
        seq_length=seq,
        micro_batch_size=mb,
        forward_only=forward_only,
    )


def configure_for_training(chunks: list[torch.nn.Module]) -> None:
    """Hook megatron's grad finalisation (DP all-reduce, per-token scaling) into the schedule."""
    from megatron.core.distributed import finalize_model_grads

    cfg = unwrap(chunks[0]).config
    cfg.finalize_model_grads_func = finalize_model_grads
    cfg.no_sync_func = chunks[0].no_sync if hasattr(chunks[0], "no_sync") else None
    cfg.grad_scale_func = None


def train_step(chunks: list[torch.nn.Module], optimizer, scheduler, microbatches: list[Batch],
               loss_fn: LossFn) -> StepResult:
    """One optimizer step over ``microbatches`` (this DP rank's share of the global batch)."""
    for chunk in chunks:
        chunk.train()
        if hasattr(chunk, "zero_grad_buffer"):
            chunk.zero_grad_buffer()
    optimizer.zero_grad()
    stats_list = run_microbatches(chunks, microbatches, loss_fn, forward_only=False)
    update_ok, grad_norm, _ = optimizer.step()
    if update_ok:
        scheduler.step(increment=1)
    stats = reduce_stats(stats_list)
    lr = optimizer.param_groups[0]["lr"]
    return StepResult(stats=stats, grad_norm=float(grad_norm or 0.0), lr=float(lr), skipped=not update_ok)


def reduce_stats(stats_list: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Sum each stat over micro-batches, then over data- and context-parallel ranks (a CP rank's
    stats cover its share of each sequence); broadcast from the last PP stage.

    Every rank returns the same dict, so any rank may log it.
    """
    import torch.distributed as dist
    from megatron.core import parallel_state as ps

    keys = sorted(stats_list[0]) if stats_list else []
    # The key set is fixed per loss function; the last stage knows it, others learn it.
    obj = [keys]
    if ps.get_pipeline_model_parallel_world_size() > 1:
        src = ps.get_pipeline_model_parallel_last_rank()
        dist.broadcast_object_list(obj, src=src, group=ps.get_pipeline_model_parallel_group())
    keys = obj[0]
    if not keys:
        return {}
    vec = torch.zeros(len(keys), dtype=torch.float64, device=collective_device())  # NCCL: a GPU tensor
    for s in stats_list:
        vec += torch.stack([s[k].detach().double().reshape(()) for k in keys]).to(vec.device)
    if ps.get_pipeline_model_parallel_world_size() > 1:
        dist.broadcast(vec, src=ps.get_pipeline_model_parallel_last_rank(),
                       group=ps.get_pipeline_model_parallel_group())
    if ps.get_data_parallel_world_size(with_context_parallel=True) > 1:
        dist.all_reduce(vec, group=ps.get_data_parallel_group(with_context_parallel=True))
    return {k: float(v) for k, v in zip(keys, vec.tolist())}


def evaluation_stats(chunks: list[torch.nn.Module], rows: list, micro_batch_size: int,
                     to_batch: Callable[[list], Batch], loss_fn: LossFn, dp_rank: int, dp_size: int
                     ) -> Optional[dict[str, float]]:
    """A loss function's stats summed over held-out rows (forward only; each DP rank takes its
    share, all ranks run the same number of micro-batches); None when there are too few rows."""
    import torch.distributed as dist
    from megatron.core import parallel_state as ps

    mine = rows[dp_rank::dp_size]
    n = len(mine) // micro_batch_size
    # every DP rank must run the same number of micro-batches (collectives inside the schedule)
    n_all = torch.tensor([n], dtype=torch.long, device=collective_device())
    if ps.get_data_parallel_world_size() > 1:
        dist.all_reduce(n_all, op=dist.ReduceOp.MIN, group=ps.get_data_parallel_group())
    n = int(n_all)
    if n == 0:
        return None
    mbs = [to_batch(mine[k * micro_batch_size:(k + 1) * micro_batch_size]) for k in range(n)]
    for c in chunks:
        c.eval()
    with torch.no_grad():
        stats = reduce_stats(run_microbatches(chunks, mbs, loss_fn, forward_only=True))
    for c in chunks:
        c.train()
    return stats
