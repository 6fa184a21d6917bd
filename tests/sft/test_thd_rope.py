"""Issue 27 B6: packed rows as Transformer Engine reads them (THD) through megatron's own RoPE.

With TE layers and ``apply_rope_fusion=False`` megatron rotates THD queries and keys with
``rope_utils._apply_rotary_pos_emb_thd``, splitting the row by the ``cu_seqlens`` attention passes it
(the padded ones when set) and sizing the frequency table from ``max_seqlen``
(``RotaryEmbedding.get_rotary_seq_len``). Before the fix, a row not exactly full raised in
``torch.split`` (its boundaries ended at the real token count), and with CP the last boundary was
stretched to the row's end while ``max_seqlen`` was not: a size mismatch on one rank. Here every real
token must be rotated by the angle of its position inside its own sample, at CP 1 and 2.
"""

from __future__ import annotations

import pytest
import torch

from nemo_thinkrm.data.packing import pack_samples
from nemo_thinkrm.data.sft import TokenizedSample
from nemo_thinkrm.trainers.sft import make_batch


class _CPGroup:
    """What megatron's THD RoPE asks of the context-parallel group."""

    def __init__(self, size: int, rank: int) -> None:
        self._size, self._rank = size, rank

    def size(self) -> int:
        return self._size

    def rank(self) -> int:
        return self._rank


def _sample(i: int, n: int) -> TokenizedSample:
    return TokenizedSample(f"s{i}", list(range(10 * i, 10 * i + n)), [0] * 2 + [1] * (n - 2))


def _rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat([-b, a], dim=-1)


@pytest.mark.parametrize("cp", [1, 2])
@pytest.mark.parametrize("lengths", [(7, 5, 9), (12, 4), (33,)])
def test_every_real_token_is_rotated_by_its_position_in_its_own_sample(cp, lengths):
    from megatron.core.models.common.embeddings.rope_utils import _apply_rotary_pos_emb_thd
    from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding

    from nemo_thinkrm.runtime.cpu_compat import apply_cpu_compat

    apply_cpu_compat()
    seq_length, dim = 48, 16
    rows = pack_samples([_sample(i, n) for i, n in enumerate(lengths)], seq_length, pad_id=0, pad_multiple=2 * cp)
    assert len(rows) == 1
    rope = RotaryEmbedding(kv_channels=dim, rotary_percent=1.0, rotary_base=10000.0)
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    covered = 0
    for rank in range(cp):
        batch = make_batch(rows, te=True, cp_size=cp, cp_rank=rank, pad_multiple=2 * cp)
        params = batch.get("packed_seq_params")
        if len(lengths) == 1:  # one sample: no THD at all (TE's causal mask)
            assert params is None
            continue
        cu = params.cu_seqlens_q_padded if params.cu_seqlens_q_padded is not None else params.cu_seqlens_q
        freqs = rope(rope.get_rotary_seq_len(None, None, None, None, packed_seq_params=params))
        t = torch.randn(batch["input_ids"].shape[1], 1, dim, generator=torch.Generator().manual_seed(rank))
        out = _apply_rotary_pos_emb_thd(t, cu, freqs, cp_group=_CPGroup(cp, rank))
        pos = batch["position_ids"][0].to(torch.float32)
        angle = torch.cat([pos[:, None] * inv_freq] * 2, dim=-1)[:, None, :]
        expected = t * angle.cos() + _rotate_half(t) * angle.sin()
        real = batch["segment_ids"][0] > 0
        torch.testing.assert_close(out[real], expected[real], rtol=1e-5, atol=1e-5)
        covered += int(real.sum())
    if len(lengths) > 1:
        assert covered == sum(n - 1 for n in lengths)  # every real position, on exactly one rank
