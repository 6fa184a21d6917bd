"""The CPU RoPE (models/cpu_rope.py) against megatron's own unfused function: bit-identical
outputs and gradients, for query-like and key-like (GQA) views of a fused QKV tensor, in fp32
and bf16, and megatron's function for the cases it does not take over."""

import pytest
import torch

from nemo_thinkrm.models import cpu_rope


def _freqs(s: int, d: int) -> torch.Tensor:
    inv = 1.0 / (10000 ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    f = torch.outer(torch.arange(s, dtype=torch.float32), inv)
    return torch.cat([f, f], dim=-1)[:, None, None, :]


@pytest.fixture(scope="module")
def megatron_bshd():

    cpu_rope.install()
    return cpu_rope._MEGATRON_BSHD


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("heads", [4, 2])
def test_bit_identical_to_megatron(megatron_bshd, dtype, heads):
    from megatron.core.models.common.embeddings import rope_utils

    assert rope_utils._apply_rotary_pos_emb_bshd is cpu_rope.apply_rotary_bshd
    g = torch.Generator().manual_seed(heads)
    qkv = torch.randn(37, 3, 8, 32, generator=g).to(dtype)
    grad = torch.randn(37, 3, heads, 32, generator=g).to(dtype)
    freqs = _freqs(37, 32)
    outs = []
    for fn in (megatron_bshd, cpu_rope.apply_rotary_bshd):
        x = qkv.clone().requires_grad_()
        t = x[:, :, 1:1 + heads]  # a strided view, as megatron's QKV split gives
        y = fn(t, freqs)
        y.backward(grad)
        outs.append((y.detach(), x.grad))
    assert torch.equal(outs[0][0], outs[1][0])
    assert torch.equal(outs[0][1], outs[1][1])
    assert not torch.equal(outs[0][0], qkv[:, :, 1:1 + heads])  # it did rotate


def test_other_cases_go_to_megatron(megatron_bshd):
    t = torch.randn(5, 1, 2, 32)
    partial = _freqs(5, 16)  # rotation over half the head dimension
    assert torch.equal(cpu_rope.apply_rotary_bshd(t, partial), megatron_bshd(t, partial))
    full = _freqs(5, 32)
    assert torch.equal(cpu_rope.apply_rotary_bshd(t, full, rotary_interleaved=True),
                       megatron_bshd(t, full, rotary_interleaved=True))
    assert torch.equal(cpu_rope.apply_rotary_bshd(t, full, mscale=0.5), megatron_bshd(t, full, mscale=0.5))
