"""Packing does not change the loss: the per-token mean over a packed batch equals the
unpacked (one sample per row, padded) run's over the same tokens (fp32, ≤1e-5 relative),
with the block-diagonal mask and with per-segment attention (``segment_params``, what SFT on
the local layers uses), whose loss and gradients also equal the mask's. Segment boundaries run
either as one SDPA call per segment or, where that is cheaper, as one dense call under the mask
built from them (``sdpa_attention.dense_is_cheaper``): both are forced here in turn."""

from __future__ import annotations

import pytest
import torch

from nemo_thinkrm.algorithms.lm_loss import masked_token_loss
from nemo_thinkrm.config.model import TokenizerConfig
from nemo_thinkrm.config.parallel import ParallelConfig
from nemo_thinkrm.data.packing import collate, pack_samples, pad_one, segment_params
from nemo_thinkrm.data.sft import builtin_arithmetic, tokenize_record
from nemo_thinkrm.models.builder import build_gpt_model
from nemo_thinkrm.examples.tiny_hf import tiny_model_config
from nemo_thinkrm.models.tokenizer import load_tokenizer


def _force(monkeypatch, attention: str) -> None:
    """"segments": a call per segment whenever a row holds more than one; "dense_segments": one dense call."""
    from nemo_thinkrm.models import sdpa_attention

    cost = {"segments": 0, "dense_segments": 10 ** 12}.get(attention)
    if cost is not None:
        monkeypatch.setattr(sdpa_attention, "SEGMENT_CALL_COST", cost)


def _batch(rows, attention: str):
    if attention == "mask":
        return collate(rows)
    batch = collate(rows, build_mask=False)
    batch["packed_seq_params"] = segment_params(batch["segment_ids"])
    return batch


def _forward(model, batch):
    extra = {"packed_seq_params": batch["packed_seq_params"]} if "packed_seq_params" in batch else {}
    per_token = model(batch["input_ids"], None, batch.get("attention_mask"), labels=batch["labels"], **extra)
    s, n, _ = masked_token_loss(batch, per_token)
    return s, n


def _loss(model, batch):
    with torch.no_grad():
        s, n = _forward(model, batch)
    return float(s), int(n)


@pytest.mark.parametrize("attention", ["mask", "segments", "dense_segments"])
@pytest.mark.parametrize("pad_multiple", [1, 8])  # 8: samples padded for CP=4 (padding between segments)
def test_packed_equals_unpacked(megatron_single, pad_multiple, attention, monkeypatch):
    _force(monkeypatch, attention)
    tok = load_tokenizer(TokenizerConfig())
    samples = [tokenize_record(r, tok, True) for r in builtin_arithmetic("builtin:arithmetic:12").records]
    from nemo_thinkrm.runtime.distributed import seed_all

    seed_all(7)  # the weights must not depend on which tests ran before in this process
    # init 0.3: attention sharp enough that a leaked segment visibly moves the loss
    model = build_gpt_model(tiny_model_config("llama", init_std=0.3), ParallelConfig()).eval()
    seq = max(len(s.input_ids) for s in samples) * 3
    seq = -(-seq // 8) * 8
    packed = pack_samples(samples, seq, tok.pad_token_id, pad_multiple)
    assert len(packed) < len(samples) and max(len(r.sample_ids) for r in packed) >= 2
    ps, pn = _loss(model, _batch(packed, attention))
    us, un = 0.0, 0
    for s in samples:
        a, b = _loss(model, _batch([pad_one(s, seq, tok.pad_token_id)], attention))
        us, un = us + a, un + b
    assert pn == un
    assert abs(ps / pn - us / un) <= 1e-5 * abs(us / un), (ps / pn, us / un)
    # without the block-diagonal mask the packed loss differs (the test can fail)
    leaky = collate(packed)
    leaky["attention_mask"] = None
    leak = abs(_loss(model, leaky)[0] / pn - us / un) / abs(us / un)
    assert leak > 100 * 1e-5, leak


def test_segment_attention_gives_the_masks_loss_and_gradients(megatron_single, monkeypatch):
    """Two packed rows in one micro-batch (rows must not be joined), forward and backward, with a
    call per segment and with the dense call over the mask built from the boundaries."""
    from nemo_thinkrm.models import sdpa_attention
    from nemo_thinkrm.runtime.distributed import seed_all

    tok = load_tokenizer(TokenizerConfig())
    samples = [tokenize_record(r, tok, True) for r in builtin_arithmetic("builtin:arithmetic:12").records]
    seed_all(3)
    model = build_gpt_model(tiny_model_config("llama", init_std=0.3), ParallelConfig()).train()
    seq = -(-max(len(s.input_ids) for s in samples) * 2 // 8) * 8
    rows = pack_samples(samples, seq, tok.pad_token_id)[:2]
    params = segment_params(torch.tensor([r.segment_ids for r in rows]))
    assert params.cu_seqlens_q[-1] == 2 * seq and seq in params.cu_seqlens_q.tolist()  # a boundary between rows
    grads, losses = {}, {}
    for attention in ("mask", "segments", "dense_segments"):
        _force(monkeypatch, attention)
        model.zero_grad()
        s, n = _forward(model, _batch(rows, attention))
        (s / n).backward()
        losses[attention] = float(s / n)
        grads[attention] = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    for attention in ("segments", "dense_segments"):
        assert abs(losses["mask"] - losses[attention]) <= 1e-5 * abs(losses["mask"]), attention
        assert torch.allclose(grads[attention], grads["mask"], rtol=1e-5, atol=1e-6), attention
    sizes = [e - a for a, e in zip(params.cu_seqlens_q.tolist()[:-1], params.cu_seqlens_q.tolist()[1:])]
    monkeypatch.undo()  # the shipped cost: few segments per row call per segment, many short ones go dense
    assert not sdpa_attention.dense_is_cheaper([1000, 24], rows=1, seq=1024)
    assert sdpa_attention.dense_is_cheaper([25] * 80 + [48], rows=8, seq=256)
    assert len(sizes) >= 4
