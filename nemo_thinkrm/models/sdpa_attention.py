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
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from megatron.core.transformer.dot_product_attention import DotProductAttention


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
        # [s, b, h, d] → [b, h, s, d]
        dropout = self.config.attention_dropout if self.training else 0.0
        if packed_seq_params is not None:
            return self._segments(query, key, value, packed_seq_params.cu_seqlens_q, dropout, gqa)
        q, k, v = (t.permute(1, 2, 0, 3) for t in (query, key, value))
        if attention_mask is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=q.shape[2] > 1, dropout_p=dropout,
                                                 scale=self.softmax_scale, enable_gqa=gqa)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=~attention_mask, dropout_p=dropout,
                                                 scale=self.softmax_scale, enable_gqa=gqa)
        b, h, s, d = out.shape
        return out.permute(2, 0, 1, 3).reshape(s, b, h * d)

    def _segments(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cu_seqlens: torch.Tensor,
                  dropout: float, gqa: bool) -> torch.Tensor:
        """Causal attention inside each ``[cu[i], cu[i+1])`` run of the flattened ``[b·S]`` positions."""
        s, b, h, d = query.shape
        # [s, b, heads, d] → [1, heads, b·s, d]: row-major over (row, position), as the boundaries are
        q, k, v = (t.permute(2, 1, 0, 3).reshape(1, t.shape[2], b * s, d) for t in (query, key, value))
        bounds = cu_seqlens.tolist()
        sizes = [e - a for a, e in zip(bounds[:-1], bounds[1:])]
        # split, not slicing: its backward is one concatenation, where each slice's backward would
        # write a full-size zero gradient (profiled: 15 % of a step)
        pieces = [F.scaled_dot_product_attention(qs, ks, vs, is_causal=qs.shape[2] > 1, dropout_p=dropout,
                                                 scale=self.softmax_scale, enable_gqa=gqa)
                  for qs, ks, vs in zip(q.split(sizes, dim=2), k.split(sizes, dim=2), v.split(sizes, dim=2))]
        out = torch.cat(pieces, dim=2)[0]  # [h, b·s, d]
        return out.view(h, b, s, d).permute(2, 1, 0, 3).reshape(s, b, h * d)
