"""Per-token log-probabilities of given sequences under the megatron model.

GRPO needs log π(y_t | y_<t) of sampled responses under the policy and the
reference model. Full-vocabulary logits are never gathered: each TP rank keeps
its vocab shard ``[b, s, V/tp]`` and megatron's ``vocab_parallel_cross_entropy``
reduces the softmax normaliser across the TP group, so memory stays ``O(V/tp)``.

We always call the model *without* labels and apply the cross entropy ourselves
(instead of letting ``GPTModel`` do it) for two reasons: sampling temperature
needs ``logits / T`` before the softmax, and the vocabulary padding rows added by
``padded_vocab_size`` must be masked out of the normaliser (their logits are 0,
not −∞, and would otherwise leak probability mass).

The cross entropy is elementwise over leading dimensions (it flattens them), so
it takes the model's ``[b, s, V/tp]`` layout and ``[b, s]`` labels unchanged; the
``[s, b]`` layout in its docstring is just megatron's internal convention.

Any PP size works: the forward goes through ``run_microbatches(forward_only=True)``
and the result lives on the last pipeline stage (``broadcast=True`` copies it to
every stage, which trainers need because every stage computes the same loss mask).
"""

from __future__ import annotations

from typing import Optional

import torch

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.runtime.device import collective_device, to_host
from nemo_thinkrm.training.engine import run_microbatches, unwrap


def vocab_parallel_logprobs(vocab_parallel_logits: torch.Tensor, labels: torch.Tensor,
                            vocab_size: Optional[int] = None, temperature: float = 1.0) -> torch.Tensor:
    """log softmax(logits / T)[label] from this rank's vocab shard ``[..., V/tp]``.

    Differentiable (usable inside a loss function). ``vocab_size`` is the real
    (unpadded) vocabulary; shard columns at or beyond it are excluded from the
    normaliser. Call on every rank of the TP group (it all-reduces over it).
    """
    from megatron.core import parallel_state as ps
    from megatron.core.tensor_parallel import vocab_parallel_cross_entropy

    if temperature <= 0:
        raise ConfigError(f"log-prob temperature must be > 0, got {temperature}")
    logits = vocab_parallel_logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    shard = logits.shape[-1]
    start = ps.get_tensor_model_parallel_rank() * shard
    if vocab_size is not None and start + shard > vocab_size:
        pad = torch.arange(start, start + shard, device=logits.device) >= vocab_size
        logits = logits.masked_fill(pad, float("-inf"))
    elif logits is vocab_parallel_logits:
        logits = logits.clone()  # the CE subtracts the max in place; keep the caller's tensor intact
    return -vocab_parallel_cross_entropy(logits, labels.long())


def vocab_parallel_entropy(vocab_parallel_logits: torch.Tensor, vocab_size: Optional[int] = None,
                           temperature: float = 1.0) -> torch.Tensor:
    """Entropy of softmax(logits / T) per position, from this rank's vocab shard ``[..., V/tp]``.

    H = log Z − Σ p·z with z the (shifted) logits: three all-reduces over the TP group
    (max, Σ e^z, Σ e^z·z), so the full vocabulary is never gathered, as for the
    log-probs. Padding columns are excluded. Not differentiable on purpose: GRPO logs
    it (Think-RM uses no entropy bonus). Call on every rank of the TP group.
    """
    import torch.distributed as dist
    from megatron.core import parallel_state as ps

    with torch.no_grad():
        logits = vocab_parallel_logits.float() / temperature
        shard = logits.shape[-1]
        start = ps.get_tensor_model_parallel_rank() * shard
        if vocab_size is not None and start + shard > vocab_size:
            pad = torch.arange(start, start + shard, device=logits.device) >= vocab_size
            logits = logits.masked_fill(pad, float("-inf"))
        group = ps.get_tensor_model_parallel_group()
        tp = ps.get_tensor_model_parallel_world_size()
        top = logits.max(dim=-1, keepdim=True).values
        if tp > 1:
            dist.all_reduce(top, op=dist.ReduceOp.MAX, group=group)
        z = logits - top
        e = torch.exp(z)
        sums = torch.stack([e.sum(-1), (e * torch.nan_to_num(z, neginf=0.0)).sum(-1)])
        if tp > 1:
            dist.all_reduce(sums, group=group)
        return torch.log(sums[0]) - sums[1] / sums[0]


def _split_microbatches(input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: Optional[torch.Tensor],
                        micro_batch_size: int) -> list[dict[str, torch.Tensor]]:
    """Equal-shape micro-batches (the PP schedule sizes its buffers from the first one).

    The last one is filled up with copies of row 0 when B does not divide; those
    rows are dropped from the result.
    """
    b = input_ids.shape[0]
    n = -(-b // micro_batch_size)
    fill = n * micro_batch_size - b
    if fill:
        rep = torch.zeros(fill, dtype=torch.long)
        input_ids = torch.cat([input_ids, input_ids[rep]])
        labels = torch.cat([labels, labels[rep]])
        attention_mask = None if attention_mask is None else torch.cat([attention_mask, attention_mask[rep]])
    out = []
    for i in range(n):
        sl = slice(i * micro_batch_size, (i + 1) * micro_batch_size)
        mb = {"input_ids": input_ids[sl], "lp_labels": labels[sl]}
        if attention_mask is not None:
            mb["attention_mask"] = _megatron_mask(attention_mask[sl])
            mb["valid"] = attention_mask[sl].bool()
        out.append(mb)
    return out


def _megatron_mask(padding_mask: torch.Tensor) -> torch.Tensor:
    """``[b, s]`` 1 = real token → megatron's bool ``[b, 1, s, s]`` (True = masked): causal
    plus no attention to padding keys, so left-padded batches are exact too."""
    s = padding_mask.shape[1]
    causal = torch.triu(torch.ones(s, s, dtype=torch.bool, device=padding_mask.device), diagonal=1)
    pad_keys = ~padding_mask.bool()[:, None, None, :]
    return causal[None, None] | pad_keys


def token_logprobs(chunks: list[torch.nn.Module], input_ids: torch.Tensor, labels: torch.Tensor,
                   attention_mask: Optional[torch.Tensor] = None, temperature: float = 1.0, *,
                   micro_batch_size: Optional[int] = None, broadcast: bool = False) -> Optional[torch.Tensor]:
    """``[B, S]`` float32 log-prob of ``labels[:, t]`` given ``input_ids[:, :t+1]`` (= −CE).

    ``attention_mask``: optional ``[B, S]`` with 1 for real tokens; padding keys are
    masked and padded positions get log-prob 0. Without it the mask is purely causal,
    which is exact for right-padded batches. Runs in eval mode under ``no_grad``
    (the previous mode is restored). Returns the tensor on the last pipeline stage
    and None elsewhere, or on every stage with ``broadcast=True`` — on the host either way.
    Call on all ranks of the model-parallel group.
    """
    from megatron.core import parallel_state as ps

    if input_ids.shape != labels.shape or input_ids.dim() != 2:
        raise ConfigError(f"input_ids {tuple(input_ids.shape)} and labels {tuple(labels.shape)} must both be [B, S]")
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise ConfigError(f"attention_mask {tuple(attention_mask.shape)} must be [B, S] like input_ids")
    if temperature <= 0:
        raise ConfigError(f"log-prob temperature must be > 0, got {temperature}")
    b, s = input_ids.shape
    mbs = micro_batch_size or b
    if mbs < 1:
        raise ConfigError(f"micro_batch_size must be >= 1, got {mbs}")
    vocab_size = getattr(unwrap(chunks[0]), "thinkrm_model_config", None)
    vocab_size = vocab_size.vocab_size if vocab_size is not None else None

    def collect(batch: dict[str, torch.Tensor], output: torch.Tensor):
        lp = vocab_parallel_logprobs(output, batch["lp_labels"], vocab_size, temperature)
        if "valid" in batch:
            lp = lp.masked_fill(~batch["valid"], 0.0)
        return output.sum() * 0, torch.tensor(1, dtype=torch.int), {"logprobs": lp.detach()}

    modes = [c.training for c in chunks]
    for c in chunks:
        c.eval()
    try:
        with torch.no_grad():
            stats = run_microbatches(chunks, _split_microbatches(input_ids, labels, attention_mask, mbs),
                                     collect, forward_only=True)
    finally:
        for c, m in zip(chunks, modes):
            c.train(m)
    result = torch.cat([st["logprobs"] for st in stats])[:b] if ps.is_pipeline_last_stage() else None
    if broadcast:
        result = broadcast_from_last_stage(result, (b, s))
    return to_host(result)  # [B, S] floats: the trainers' batches live on the host


def broadcast_from_last_stage(tensor: Optional[torch.Tensor], shape: tuple[int, ...]) -> torch.Tensor:
    """Copy a float32 tensor from the last pipeline stage to every stage (no-op at PP=1)."""
    import torch.distributed as dist
    from megatron.core import parallel_state as ps

    if ps.get_pipeline_model_parallel_world_size() == 1:
        assert tensor is not None
        return tensor
    device = collective_device()  # NCCL broadcasts GPU tensors only
    buf = tensor.to(device).contiguous() if tensor is not None else torch.empty(shape, dtype=torch.float32,
                                                                                  device=device)
    dist.broadcast(buf, src=ps.get_pipeline_model_parallel_last_rank(),
                   group=ps.get_pipeline_model_parallel_group())
    return buf
