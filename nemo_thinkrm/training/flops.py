"""Model FLOPs of a training step, for FLOP/s and MFU in the logs and benchmarks.

Counted the usual way (the PaLM paper's appendix B, Megatron-LM's ``num_floating_point_
operations``): a multiply-add is 2 FLOPs, backward costs twice the forward, so a token
through a weight matrix of ``n`` elements costs ``6·n`` for forward + backward. The matrices
are every linear layer (QKV, attention output, MLP, and the output layer; not the embedding
lookup). Attention scores and the weighted sum cost ``2·2·l²·d`` per layer for a sequence of
``l`` tokens with query width ``d`` (heads × head dim) in the forward; with the causal mask
only half of that is work, so we count ``6·l²·d`` per layer for forward + backward, summed
over the *samples* of a packed row (a token never attends outside its sample). Activation
recomputation is not counted: these are model FLOPs, not hardware FLOPs.
"""

from __future__ import annotations

from typing import Iterable

import torch

from nemo_thinkrm.config.model import ModelConfig


def matmul_params(cfg: ModelConfig, outputs: int | None = None) -> int:
    """Elements of every weight matrix a token passes through (all layers + the output layer,
    ``outputs`` wide: the vocabulary by default, 1 for a reward head)."""
    q, kv = cfg.num_attention_heads * cfg.head_dim, cfg.num_query_groups * cfg.head_dim
    attention = cfg.hidden_size * (q + 2 * kv) + q * cfg.hidden_size
    mlp = 3 * cfg.hidden_size * cfg.ffn_hidden_size  # SwiGLU: gate, up, down
    return cfg.num_layers * (attention + mlp) + cfg.hidden_size * (cfg.vocab_size if outputs is None else outputs)


def segment_lengths(segment_ids: torch.Tensor) -> torch.Tensor:
    """Token count of every sample (segment id > 0) in a ``[b, S]`` micro-batch."""
    ids = segment_ids[segment_ids > 0]
    if ids.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    rows = torch.nonzero(segment_ids > 0)[:, 0]
    keys = rows * (int(segment_ids.max()) + 1) + ids  # samples of different rows never share a key
    return torch.unique(keys, return_counts=True)[1]


def training_flops(cfg: ModelConfig, lengths: Iterable[int] | torch.Tensor, cp_size: int = 1,
                   outputs: int | None = None) -> float:
    """Forward + backward model FLOPs for samples of these token lengths (see the module doc).

    Under context parallelism ``lengths`` are this rank's shares (1/cp of each sample): its
    queries attend to the whole sample, so its attention work is ``cp·l_local²`` per sample.
    """
    lengths = torch.as_tensor(lengths if isinstance(lengths, torch.Tensor) else list(lengths), dtype=torch.float64)
    attention = 6.0 * cfg.num_layers * cfg.num_attention_heads * cfg.head_dim * cp_size * float((lengths ** 2).sum())
    return 6.0 * matmul_params(cfg, outputs) * float(lengths.sum()) + attention
