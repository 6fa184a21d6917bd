"""Sequence packing: many samples in one row of ``seq_length`` tokens, none attending across.

A sample of n tokens contributes n−1 (input, label) positions: labels never cross
sample boundaries and position ids restart at 0 per sample. Each packed row keeps
a segment id per position (0 = padding); from it we build

* on CPU: a block-diagonal causal attention mask ``[b, 1, S, S]`` (True = masked),
  which megatron's local attention applies as is;
* on GPU: ``PackedSeqParams`` (THD layout, ``cu_seqlens``) for Transformer Engine's
  fused attention.

Because RoPE is relative and attention never crosses segments, a packed row gives
the same per-token losses as its samples run one by one (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from nemo_thinkrm.data.sft import TokenizedSample


@dataclass
class PackedRow:
    input_ids: list[int]
    labels: list[int]
    loss_mask: list[int]
    segment_ids: list[int]
    position_ids: list[int]
    sample_ids: list[str]


def _positions(sample: TokenizedSample) -> tuple[list[int], list[int], list[int]]:
    ids, mask = sample.input_ids, sample.loss_mask
    return ids[:-1], ids[1:], mask[1:]


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def pack_samples(samples: Sequence[TokenizedSample], seq_length: int, pad_id: int,
                 pad_multiple: int = 1) -> list[PackedRow]:
    """Greedy first-fit in the given order (the order is the epoch's shuffle, so packing
    is deterministic per epoch); every sample must already fit (``fit_to_length``).

    ``pad_multiple`` > 1 pads every sample to a multiple of it (padding positions have
    segment id 0 and no loss): context parallelism cuts each packed sequence into 2·CP
    equal chunks (``training/context_parallel.py``).
    """
    bins: list[list[TokenizedSample]] = []
    space: list[int] = []
    for s in samples:
        need = _round_up(len(s.input_ids) - 1, pad_multiple)
        if need > seq_length:
            raise ValueError(f"sample {s.id} needs {need} positions > seq_length {seq_length}; apply fit_to_length")
        for b, free in enumerate(space):
            if free >= need:
                bins[b].append(s)
                space[b] -= need
                break
        else:
            bins.append([s])
            space.append(seq_length - need)
    return [_pack_one(b, seq_length, pad_id, pad_multiple) for b in bins]


def pad_one(sample: TokenizedSample, seq_length: int, pad_id: int) -> PackedRow:
    """A single sample, right-padded: the unpacked baseline."""
    return _pack_one([sample], seq_length, pad_id)


def _pack_one(group: Sequence[TokenizedSample], seq_length: int, pad_id: int, pad_multiple: int = 1) -> PackedRow:
    row = PackedRow([], [], [], [], [], [])
    for seg, s in enumerate(group, start=1):
        inp, lab, mask = _positions(s)
        gap = _round_up(len(inp), pad_multiple) - len(inp)
        row.input_ids += inp + [pad_id] * gap
        row.labels += lab + [pad_id] * gap
        row.loss_mask += mask + [0] * gap
        row.segment_ids += [seg] * len(inp) + [0] * gap
        row.position_ids += list(range(len(inp))) + [0] * gap
        row.sample_ids.append(s.id)
    pad = seq_length - len(row.input_ids)
    row.input_ids += [pad_id] * pad
    row.labels += [pad_id] * pad
    row.loss_mask += [0] * pad
    row.segment_ids += [0] * pad
    row.position_ids += [0] * pad
    return row


def fill_to_multiple(rows: Sequence[PackedRow], multiple: int) -> list[PackedRow]:
    """``rows`` and loss-free copies of the last one up to a multiple of ``multiple``: an evaluation
    runs whole micro-batches only, so without them 2 validation rows at micro-batch size 4 gave no
    loss at all (NaN in the log) and 6 rows were scored as 4. A copy's loss mask is zero, so it
    adds no tokens and no loss."""
    rows = list(rows)
    if rows and len(rows) % multiple:
        last = rows[-1]
        blank = PackedRow(last.input_ids, last.labels, [0] * len(last.loss_mask), last.segment_ids,
                          last.position_ids, [])
        rows += [blank] * (multiple - len(rows) % multiple)
    return rows


def collate(rows: Sequence[PackedRow], build_mask: bool = True) -> dict[str, torch.Tensor]:
    """Tensors for the engine; ``attention_mask`` only where the CPU/local path needs it."""
    batch = {
        "input_ids": torch.tensor([r.input_ids for r in rows], dtype=torch.long),
        "labels": torch.tensor([r.labels for r in rows], dtype=torch.long),
        "loss_mask": torch.tensor([r.loss_mask for r in rows], dtype=torch.float32),
        "segment_ids": torch.tensor([r.segment_ids for r in rows], dtype=torch.long),
        "position_ids": torch.tensor([r.position_ids for r in rows], dtype=torch.long),
    }
    if build_mask:
        batch["attention_mask"] = block_causal_mask(batch["segment_ids"])
    return batch


def block_causal_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """``[b, 1, S, S]`` bool, True where attention is NOT allowed: other segments, the
    future, and padding (a padding query attends only to itself, so no row is empty)."""
    b, s = segment_ids.shape
    same = segment_ids.unsqueeze(2) == segment_ids.unsqueeze(1)
    causal = torch.ones(s, s, dtype=torch.bool).tril()
    allowed = same & causal & (segment_ids.unsqueeze(2) > 0)
    allowed |= torch.eye(s, dtype=torch.bool)
    return (~allowed).unsqueeze(1)


def segment_params(segment_ids: torch.Tensor):
    """Segment boundaries of a ``[b, S]`` micro-batch for the local layers' attention
    (``models/sdpa_attention.py``): ``cu_seqlens_q`` marks every run of one segment id (a
    sample, or padding) over the flattened ``b·S`` positions, rows never joined; format "sbhd"
    (the tensors stay ``[s, b, ...]``). Replaces the ``[b, 1, S, S]`` block-diagonal mask."""
    from megatron.core.packed_seq_params import PackedSeqParams

    b, s = segment_ids.shape
    starts = torch.ones(b, s, dtype=torch.bool)
    starts[:, 1:] = segment_ids[:, 1:] != segment_ids[:, :-1]
    cu = torch.cat([starts.reshape(-1).nonzero()[:, 0], torch.tensor([b * s])]).to(torch.int32)
    return PackedSeqParams(qkv_format="sbhd", cu_seqlens_q=cu, cu_seqlens_kv=cu, max_seqlen_q=s, max_seqlen_kv=s)


def packed_seq_params(segment_ids: torch.Tensor, pad_multiple: int = 1):
    """Transformer Engine THD metadata for a micro-batch of one packed row (GPU path).

    The row's tail padding is a segment of its own, so the boundaries cover every token of the
    row (the way NeMo and Megatron-Bridge pack): megatron's unfused THD RoPE
    (``rope_utils._apply_rotary_pos_emb_thd``) splits the row by these boundaries and raises when
    they end before the row does, and TE's context-parallel split indexes the whole row by them.
    ``max_seqlen`` is the longest padded segment, never the row length: megatron sizes the RoPE
    table from it (``get_rotary_seq_len``) and, were it equal to the row length, would rotate each
    sample by its offset in the row instead of its own positions.

    ``pad_multiple`` = 1: ``cu_seqlens`` are those boundaries. ``pad_multiple`` > 1 (rows from
    ``pack_samples(..., pad_multiple)``, context parallelism): ``cu_seqlens`` hold the real
    lengths (the tail's is 0) and ``cu_seqlens_*_padded`` the padded offsets.
    """
    from megatron.core.packed_seq_params import PackedSeqParams

    if segment_ids.shape[0] != 1:
        raise ValueError("THD packing runs with micro_batch_size=1 (one packed row per micro-batch)")
    seg = segment_ids[0].to(torch.long)
    row_len = seg.shape[0]
    lengths = torch.bincount(seg[seg > 0])[1:]
    lengths = lengths[lengths > 0]
    padded = -(-lengths // pad_multiple) * pad_multiple
    tail = row_len - int(padded.sum())
    if tail % pad_multiple:
        raise ValueError(f"a packed row of {row_len} tokens leaves {tail} padding tokens, not a multiple of "
                         f"{pad_multiple}: seq_length must be a multiple of {pad_multiple}")
    if tail:
        padded = torch.cat([padded, padded.new_tensor([tail])])
        lengths = torch.cat([lengths, lengths.new_tensor([0])])
    cu_padded = torch.zeros(len(padded) + 1, dtype=torch.int32, device=seg.device)
    cu_padded[1:] = torch.cumsum(padded, 0)
    max_len = int(padded.max())
    if pad_multiple == 1:
        return PackedSeqParams(qkv_format="thd", cu_seqlens_q=cu_padded, cu_seqlens_kv=cu_padded,
                               max_seqlen_q=max_len, max_seqlen_kv=max_len)
    cu = torch.zeros_like(cu_padded)
    cu[1:] = torch.cumsum(lengths, 0)
    return PackedSeqParams(qkv_format="thd", cu_seqlens_q=cu, cu_seqlens_kv=cu, cu_seqlens_q_padded=cu_padded,
                           cu_seqlens_kv_padded=cu_padded, max_seqlen_q=max_len, max_seqlen_kv=max_len)


def padding_waste(rows: Sequence[PackedRow]) -> float:
    """Fraction of positions that are padding."""
    total = sum(len(r.segment_ids) for r in rows)
    return sum(r.segment_ids.count(0) for r in rows) / max(total, 1)
