"""The few collectives the model tools need, with the process group passed in."""

from __future__ import annotations

import torch
import torch.distributed as dist


def all_gather_pieces(tensor: torch.Tensor, group=None) -> list[torch.Tensor]:
    """All ranks' copies of ``tensor`` (same shape everywhere) in rank order within ``group``."""
    size = dist.get_world_size(group) if dist.is_initialized() else 1
    if size == 1:
        return [tensor]
    pieces = [torch.empty_like(tensor) for _ in range(size)]
    dist.all_gather(pieces, tensor.contiguous(), group=group)
    return pieces


def gather_vocab_logits(logits: torch.Tensor, vocab_size: int, group=None) -> torch.Tensor:
    """Vocab-sharded logits ``[..., V/tp]`` → full ``[..., vocab_size]`` (padding dropped).

    For inspection and parity checks only: training and log-probs use the
    vocab-parallel cross entropy and never materialise full logits.
    """
    full = torch.cat(all_gather_pieces(logits, group), dim=-1)
    return full[..., :vocab_size]
