"""Context parallelism: which tokens of a sequence each CP rank holds, in megatron's order.

With CP = c, every sequence is cut into 2c equal chunks and rank r keeps chunks r and
2c−1−r. Under a causal mask a late chunk costs more attention than an early one, so
pairing the r-th chunk from the front with the r-th from the back gives every rank the
same work — megatron's ``get_batch_on_this_cp_rank`` (megatron/core/utils.py) does this
for [b, s] batches. Packed rows (THD) are cut per sequence, each sequence padded to a
multiple of 2c, which is what Transformer Engine's ``thd_get_partitioned_indices``
computes for its context-parallel attention; ``thd_token_index`` is the same rule in
plain torch, so the split is tested on CPU.

Everything a loss reads is split with the same index (inputs, labels, loss mask,
positions, segment ids), so a rank's loss sum and token count cover exactly its tokens;
summed over the CP group (``training/engine.reduce_stats`` reduces over data × context
parallel ranks, as megatron's ``finalize_model_grads`` does for the token count that
scales the gradients) they are the full sequence's. The attention itself — the ring
exchange of keys and values — is Transformer Engine's, on GPUs only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from nemo_thinkrm.config.errors import ConfigError

SEQ_KEYS = ("input_ids", "labels", "loss_mask", "position_ids", "segment_ids")


def cp_token_index(seq_len: int, cp_size: int, cp_rank: int) -> torch.Tensor:
    """Positions (ascending) of rank ``cp_rank``'s tokens in a [b, seq_len] batch."""
    if seq_len % (2 * cp_size) != 0:
        raise ConfigError(f"seq_length ({seq_len}) must be a multiple of 2 × context_parallel_size ({2 * cp_size})")
    chunk = seq_len // (2 * cp_size)
    first = torch.arange(cp_rank * chunk, (cp_rank + 1) * chunk)
    last_start = (2 * cp_size - 1 - cp_rank) * chunk
    return torch.cat([first, torch.arange(last_start, last_start + chunk)])


def thd_token_index(cu_seqlens_padded: torch.Tensor, cp_size: int, cp_rank: int) -> torch.Tensor:
    """Positions of rank ``cp_rank``'s tokens in a packed row: each (padded) sequence is cut into
    2·cp chunks and the rank keeps chunks ``cp_rank`` and ``2·cp−1−cp_rank`` of every sequence."""
    cu = cu_seqlens_padded.to(torch.long).cpu()
    lengths = cu[1:] - cu[:-1]
    if bool((lengths % (2 * cp_size) != 0).any()):
        raise ConfigError(f"packed sequence lengths {lengths.tolist()} must be multiples of 2 × "
                          f"context_parallel_size ({2 * cp_size}); pack with pad_multiple={2 * cp_size}")
    total = int(cu[-1])
    seq = torch.repeat_interleave(torch.arange(len(lengths)), lengths)  # sequence of each position
    offset = torch.arange(total) - cu[:-1][seq]
    chunk = (offset // (lengths[seq] // (2 * cp_size)))
    keep = (chunk == cp_rank) | (chunk == 2 * cp_size - 1 - cp_rank)
    return keep.nonzero()[:, 0]


def split_batch(batch: dict[str, Any], cp_size: int, cp_rank: int) -> dict[str, Any]:
    """This CP rank's share of a micro-batch (a new dict; CP = 1 returns it unchanged).

    With ``packed_seq_params`` (THD) the row is cut per sequence and the parameters keep the
    whole row's ``cu_seqlens`` (TE's context-parallel attention wants the global ones);
    otherwise the row is cut in megatron's 2·CP chunks. A dense ``attention_mask`` cannot
    be split (TE builds the causal mask itself), so it is refused.
    """
    if cp_size == 1:
        return batch
    if batch.get("attention_mask") is not None:
        raise ConfigError("context parallelism needs Transformer Engine attention without a dense attention_mask")
    params = batch.get("packed_seq_params")
    seq_len = batch["input_ids"].shape[1]
    if params is not None:
        padded = params.cu_seqlens_q_padded if params.cu_seqlens_q_padded is not None else params.cu_seqlens_q
        if int(padded[-1]) != seq_len:
            raise ConfigError(f"cu_seqlens_padded ends at {int(padded[-1])}, the row has {seq_len} tokens")
        index = thd_token_index(padded, cp_size, cp_rank)
    else:
        index = cp_token_index(seq_len, cp_size, cp_rank)
    out = dict(batch)
    for key in SEQ_KEYS:
        if key in out and out[key] is not None:
            out[key] = out[key].index_select(1, index.to(out[key].device))
    if params is not None:
        out["packed_seq_params"] = replace(params)
    return out
