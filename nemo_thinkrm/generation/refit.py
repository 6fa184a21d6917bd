"""Refit: the policy's current weights as 🤗-named full tensors on every rank, bucket by bucket.

This is the weight hand-over from a model-parallel megatron trainer to the rollout engine
that lives in each training process (``vllm_engine.py``): in memory, no checkpoint on disk,
and bounded extra memory whatever the model size.

A pipeline stage owns its layers' parameters and every tensor-parallel rank holds a shard
of each. The stage's parameters are cut into buckets of about ``bucket_mb`` (full size, in
rule order); for each bucket, on every rank, in the same order:

1. the owning stage's TP ranks all-gather their shards of the whole bucket in one flat
   collective and rebuild the full megatron tensors (``hf_mapping.full_tensor``), which
   become 🤗 tensors (fused QKV and gate/up split back; ``megatron_to_hf_tensors``);
2. the owning stage broadcasts the bucket (one flat buffer, plus the names and shapes as a
   small object) over the pipeline group, so every rank of every stage holds it;
3. the caller consumes the bucket's tensors (vLLM copies each into its own, possibly
   TP-sharded, parameters) and the bucket is dropped before the next one is gathered.

Extra memory per rank at any moment: about 3 × ``bucket_mb`` (the gathered shards, the
bucket's 🤗 tensors, the flat broadcast buffer) plus one parameter larger than a bucket
(a bucket never splits a tensor). With the default 512 MB that is ~1.5 GB beside an 8B
model's 16 GB of bf16 weights. Data-parallel replicas hold identical weights, so they run
no collective here at all; neither does TP = PP = 1.

This is verl's SPMD hand-over (tensors broadcast from their pipeline owner, all-gathered
over TP, loaded in-process; ``verl/utils/megatron_utils.py:per_tensor_generator``), with
NeMo-RL's buckets (``megatron_policy_worker.py:stream_weights_via_ipc_zmq``) so a bucket
costs one collective instead of one per tensor.

Every rank must consume the generator to the end: the collectives are matched across ranks.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.distributed as dist

from nemo_thinkrm.config.model import ModelConfig
from nemo_thinkrm.models.hf_mapping import ParamRule, exported_rules, full_tensor, megatron_to_hf_tensors
from nemo_thinkrm.runtime.device import collective_device

DEFAULT_BUCKET_MB = 512


def plan_buckets(params: dict[str, torch.Tensor], pairs: list[tuple[ParamRule, str]], tp_size: int,
                 bucket_bytes: int) -> list[list[tuple[ParamRule, str]]]:
    """Consecutive (rule, name) pairs grouped into buckets of at most ``bucket_bytes`` of full
    tensors (a tensor larger than that gets a bucket of its own); one dtype per bucket."""
    buckets: list[list[tuple[ParamRule, str]]] = []
    size, dtype = 0, None
    for rule, name in pairs:
        p = params[name]
        full_bytes = p.numel() * p.element_size() * (tp_size if rule.tp_dim is not None else 1)
        if not buckets or size + full_bytes > bucket_bytes or p.dtype != dtype:
            buckets.append([])
            size, dtype = 0, p.dtype
        buckets[-1].append((rule, name))
        size += full_bytes
    return buckets


def iter_hf_weights(module: torch.nn.Module, cfg: ModelConfig,
                    bucket_mb: float = DEFAULT_BUCKET_MB) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (🤗 name, full tensor) for the whole model, on every rank (see the module doc)."""
    from megatron.core import parallel_state as ps

    tp_group, pp_group = ps.get_tensor_model_parallel_group(), ps.get_pipeline_model_parallel_group()
    tp, pp = ps.get_tensor_model_parallel_world_size(), ps.get_pipeline_model_parallel_world_size()
    pp_rank = ps.get_pipeline_model_parallel_rank()
    params = {n: p.detach() for n, p in module.named_parameters()}
    mine = plan_buckets(params, exported_rules(module, cfg, pp_rank, pp), tp, int(bucket_mb * 2 ** 20))
    counts = [len(mine)]
    pp_ranks = [dist.get_rank()]
    if pp > 1:
        counts = [None] * pp
        dist.all_gather_object(counts, len(mine), group=pp_group)
        pp_ranks = dist.get_process_group_ranks(pp_group)
    for stage in range(pp):
        for b in range(counts[stage]):
            hf = _gather_bucket(mine[b], params, cfg, tp, tp_group) if stage == pp_rank else None
            if pp > 1:
                hf = _broadcast_bucket(hf, pp_ranks[stage], pp_group)
            yield from hf.items()
            del hf


def _gather_bucket(bucket: list[tuple[ParamRule, str]], params: dict[str, torch.Tensor], cfg: ModelConfig,
                   tp: int, tp_group) -> dict[str, torch.Tensor]:
    """This stage's bucket as 🤗 tensors: one all-gather of the flat shards over the TP group
    (none at TP = 1, where the local tensors are the full ones)."""
    local = [params[name] for _, name in bucket]
    if tp > 1:
        flat = torch.cat([t.reshape(-1) for t in local])
        pieces = [torch.empty_like(flat) for _ in range(tp)]
        dist.all_gather(pieces, flat, group=tp_group)
    out: dict[str, torch.Tensor] = {}
    offset = 0
    for (rule, _), t in zip(bucket, local):
        shards = [p[offset:offset + t.numel()].view(t.shape) for p in pieces] if tp > 1 else [t]
        out.update(megatron_to_hf_tensors(rule, full_tensor(rule, shards, cfg), cfg))
        offset += t.numel()
    return out


def _broadcast_bucket(hf: dict[str, torch.Tensor] | None, src: int, group) -> dict[str, torch.Tensor]:
    """The owning stage's bucket on every rank of the pipeline group (names/shapes, then one flat buffer)."""
    meta = [None if hf is None else ([(k, tuple(v.shape)) for k, v in hf.items()],
                                     str(next(iter(hf.values())).dtype).removeprefix("torch."))]
    dist.broadcast_object_list(meta, src=src, group=group)
    shapes, dtype = meta[0]
    if hf is not None:
        flat = torch.cat([v.reshape(-1) for v in hf.values()]).to(collective_device())
    else:
        total = sum(int(torch.Size(s).numel()) for _, s in shapes)
        flat = torch.empty(total, dtype=getattr(torch, dtype), device=collective_device())
    dist.broadcast(flat, src=src, group=group)
    out, offset = {}, 0
    for name, shape in shapes:
        n = int(torch.Size(shape).numel())
        out[name] = flat[offset:offset + n].view(shape)
        offset += n
    return out
