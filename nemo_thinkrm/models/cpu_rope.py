"""Rotary embeddings for megatron's local (non-TE) layers on CPU, without the concatenations.

megatron's unfused RoPE (``rope_utils._apply_rotary_pos_emb_bshd``) computes
``t·cos + rotate_half(t)·sin`` with ``rotate_half = cat(-x2, x1)`` and a final
``cat((t, t_pass))``, and autograd adds the mirror image in the backward: per query and
key tensor, per layer, two full-size concatenations forward, one backward and a negation
each way (profiled: ~3 % of a packed SFT step at hidden 128). On GPUs TE's fused kernel
replaces all of it; on CPU this function writes the two halves straight into one output:

    out₁ = x₁·cos₁ − x₂·sin₁        out₂ = x₂·cos₂ + x₁·sin₂
    ∂x₁ = g₁·cos₁ + g₂·sin₂         ∂x₂ = g₂·cos₂ − g₁·sin₁

Each product and each sum is the one megatron's expression performs (``a + (−b)`` is
``a − b`` exactly in IEEE arithmetic), so the results are bit-identical, forward and
backward (``tests/unit/models/test_cpu_rope.py``). Only the common case is taken over:
CPU tensors, rotation over the whole head dimension, not interleaved, not MLA, mscale 1;
everything else goes to megatron's own function. Installed by ``layer_spec.py`` when it
builds the local spec.
"""

from __future__ import annotations

import torch

_MEGATRON_BSHD = None


class _RotaryHalves(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(cos, sin)
        (c1, c2), (s1, s2) = cos.chunk(2, dim=-1), sin.chunk(2, dim=-1)
        return _halves(t, c1, c2, s1, s2, sign=-1)  # x₁c₁ − x₂s₁, x₂c₂ + x₁s₂

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        cos, sin = ctx.saved_tensors
        (c1, c2), (s1, s2) = cos.chunk(2, dim=-1), sin.chunk(2, dim=-1)
        return _halves(grad, c1, c2, s2, s1, sign=1), None, None  # g₁c₁ + g₂s₂, g₂c₂ − g₁s₁


def _halves(t: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor, sa: torch.Tensor, sb: torch.Tensor,
            sign: int) -> torch.Tensor:
    """``[x₁·c₁ + sign·x₂·sa, x₂·c₂ − sign·x₁·sb]`` written into one buffer (no concatenation)."""
    x1, x2 = t.chunk(2, dim=-1)
    out = torch.empty(t.shape, dtype=t.dtype, device=t.device)
    o1, o2 = out.chunk(2, dim=-1)
    torch.mul(x1, c1, out=o1)
    torch.mul(x2, c2, out=o2)
    if sign < 0:
        o1.sub_(x2 * sa)
        o2.add_(x1 * sb)
    else:
        o1.add_(x2 * sa)
        o2.sub_(x1 * sb)
    return out


def apply_rotary_bshd(t: torch.Tensor, freqs: torch.Tensor, rotary_interleaved: bool = False,
                      multi_latent_attention: bool = False, mscale: float = 1.0) -> torch.Tensor:
    """Drop-in for megatron's ``_apply_rotary_pos_emb_bshd`` (same signature and result)."""
    if (t.device.type != "cpu" or rotary_interleaved or multi_latent_attention or mscale != 1.0
            or freqs.shape[-1] != t.shape[-1] or t.shape[-1] % 2):
        return _MEGATRON_BSHD(t, freqs, rotary_interleaved=rotary_interleaved,
                              multi_latent_attention=multi_latent_attention, mscale=mscale)
    # megatron: cos_ = (torch.cos(freqs) * mscale).to(t.dtype), with mscale == 1
    return _RotaryHalves.apply(t, torch.cos(freqs).to(t.dtype), torch.sin(freqs).to(t.dtype))


def install() -> None:
    """Route megatron's unfused RoPE through ``apply_rotary_bshd`` (idempotent)."""
    global _MEGATRON_BSHD
    from megatron.core.models.common.embeddings import rope_utils

    if _MEGATRON_BSHD is None:
        _MEGATRON_BSHD = rope_utils._apply_rotary_pos_emb_bshd
    rope_utils._apply_rotary_pos_emb_bshd = apply_rotary_bshd
