"""Core attention for megatron's local (non-TE) layers through ``F.scaled_dot_product_attention``.

megatron's ``DotProductAttention`` materialises the ``[b, heads, s, s]`` scores and runs an
unfused masked softmax; on CPU that made a packed 1k-token step ~3× slower than 🤗's SDPA
path (bench/sft_throughput.py). This subclass keeps megatron's interface and tensor layout
(``[s, b, heads, dim]`` in, ``[s, b, heads·dim]`` out) and hands the math to PyTorch's fused
kernel. The mask convention is megatron's (bool, True = masked); ``None`` means causal.
Selected in ``layer_spec.py`` (the layer choice lives in the spec).

Packed rows (SFT): instead of a ``[S, S]`` block-diagonal mask, the batch may carry
``PackedSeqParams(qkv_format="sbhd", cu_seqlens_q=...)`` with the boundaries of every run of
one sample (and of padding) over the flattened ``[b·S]`` positions (``data/packing.py:
segment_params``). Attention then runs causally inside each segment only, so a row of
four 256-token samples costs 4·256² instead of 1024² (attention dominates small models at
long sequences). Same result as the block-diagonal mask (tested to 1e-5): a token sees
exactly its own sample's earlier tokens either way, and RoPE is relative. The loop is over
segments (a handful per row), not tokens; the pieces are views (``split``).

Many short segments (a reward model's packed pairs: ~90 segments of ~25 tokens per micro-batch)
turn that around: each SDPA call has a fixed cost (its autograd nodes, the split and the
concatenation, Python) that outweighs the ``S²`` a dense call wastes. ``dense_is_cheaper`` weighs
the two from the segment sizes alone and the micro-batch then runs one dense call under the
block-diagonal causal mask built from the same boundaries (same result; measured on 2 cores: a
tiny reward-model step 0.95 s → 0.60 s, while a packed SFT row of a few long samples keeps its
segments).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from megatron.core.transformer.dot_product_attention import DotProductAttention

SEGMENT_CALL_COST = 16384
"""What one per-segment SDPA call costs beyond its ``L²`` scores, in units of one score of a dense
call (fp32, CPU): a 128-token segment's worth. Measured in place on 2 cores (fwd + bwd, Python and
autograd included), ``bench/sft_throughput.py`` shapes and the tiny reward model's packed pairs."""


def dense_is_cheaper(sizes: Sequence[int], rows: int, seq: int) -> bool:
    """Whether one dense masked call over ``rows × seq²`` scores beats a causal call per segment."""
    return rows * seq * seq <= sum(n * n for n in sizes) + SEGMENT_CALL_COST * len(sizes)


def segment_mask(sizes: Sequence[int], rows: int, seq: int, device: torch.device) -> torch.Tensor:
    """``[rows, 1, seq, seq]`` bool in SDPA's sense, True = may attend: a position sees its own
    segment's earlier positions only (the segments tile the flattened ``rows·seq`` positions,
    never across rows)."""
    run = torch.repeat_interleave(torch.arange(len(sizes), device=device),
                                  torch.tensor(sizes, device=device)).view(rows, seq)
    earlier = torch.ones(seq, seq, dtype=torch.bool, device=device).tril()
    return ((run.unsqueeze(2) == run.unsqueeze(1)) & earlier).unsqueeze(1)


class SDPADotProductAttention(DotProductAttention):
    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                attention_mask: Optional[torch.Tensor], attn_mask_type=None, attention_bias=None,
                packed_seq_params=None) -> torch.Tensor:
        if attention_bias is not None or (packed_seq_params is not None and packed_seq_params.qkv_format != "sbhd"):
            raise NotImplementedError("SDPA core attention takes a dense mask or sbhd segments; "
                                      "use Transformer Engine for THD")
        # grouped-query attention: SDPA's enable_gqa (query head i reads key/value group
        # i // (heads / groups), megatron's order) instead of repeat_interleave copies of k and v
        # and their summing backward (profiled: ~2 % of a packed step)
        gqa = self.num_attention_heads_per_partition != self.num_query_groups_per_partition
        dropout = self.config.attention_dropout if self.training else 0.0
        if packed_seq_params is not None:
            return self._segments(query, key, value, packed_seq_params.cu_seqlens_q, dropout, gqa)
        return self._dense(query, key, value, None if attention_mask is None else ~attention_mask, dropout, gqa)

    def _dense(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, allowed: Optional[torch.Tensor],
               dropout: float, gqa: bool) -> torch.Tensor:
        """One SDPA call over whole rows: under ``allowed`` (SDPA's sense, True = may attend), or
        causal when it is None."""
        q, k, v = (t.permute(1, 2, 0, 3) for t in (query, key, value))  # [s, b, h, d] → [b, h, s, d]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, is_causal=allowed is None and q.shape[2] > 1,
                                             dropout_p=dropout, scale=self.softmax_scale, enable_gqa=gqa)
        b, h, s, d = out.shape
        return out.permute(2, 0, 1, 3).reshape(s, b, h * d)

    def _segments(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cu_seqlens: torch.Tensor,
                  dropout: float, gqa: bool) -> torch.Tensor:
        """Causal attention inside each ``[cu[i], cu[i+1])`` run of the flattened ``[b·S]`` positions."""
        s, b, h, d = query.shape
        bounds = cu_seqlens.tolist()
        sizes = [e - a for a, e in zip(bounds[:-1], bounds[1:])]
        if dense_is_cheaper(sizes, b, s):
            return self._dense(query, key, value, segment_mask(sizes, b, s, query.device), dropout, gqa)
        # [s, b, heads, d] → [1, heads, b·s, d]: row-major over (row, position), as the boundaries are
        q, k, v = (t.permute(2, 1, 0, 3).reshape(1, t.shape[2], b * s, d) for t in (query, key, value))
        # split, not slicing: its backward is one concatenation, where each slice's backward would
        # write a full-size zero gradient (profiled: 15 % of a step)
        pieces = [F.scaled_dot_product_attention(qs, ks, vs, is_causal=qs.shape[2] > 1, dropout_p=dropout,
                                                 scale=self.softmax_scale, enable_gqa=gqa)
                  for qs, ks, vs in zip(q.split(sizes, dim=2), k.split(sizes, dim=2), v.split(sizes, dim=2))]
        out = torch.cat(pieces, dim=2)[0]  # [h, b·s, d]
        return out.view(h, b, s, d).permute(2, 1, 0, 3).reshape(s, b, h * d)
