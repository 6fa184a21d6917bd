"""Context-parallel splitting and loss reduction, on CPU against unsplit references.

The attention of a CP run (Transformer Engine's ring exchange) needs GPUs, so it does not
run here; what does: which tokens each CP rank gets (compared with megatron's own
``get_batch_on_this_cp_rank`` and with Transformer Engine's per-sequence THD rule worked
by hand), that every token and label lands on exactly one rank, and that the per-rank loss
sums reduced over a real 2-process CP group equal the full-sequence loss.
"""

from __future__ import annotations

import json

import pytest
import torch

from nemo_thinkrm.data.packing import collate, pack_samples, packed_seq_params
from nemo_thinkrm.data.sft import TokenizedSample
from nemo_thinkrm.training.context_parallel import cp_token_index, split_batch, thd_token_index
from tests.helpers import run_torchrun


@pytest.mark.parametrize("cp", [2, 3])
def test_bshd_split_matches_megatron(monkeypatch, cp):
    from megatron.core import parallel_state as ps
    from megatron.core.utils import get_batch_on_this_cp_rank

    seq = 4 * cp * 3
    batch = {"input_ids": torch.arange(2 * seq).view(2, seq), "labels": torch.arange(2 * seq).view(2, seq) + 1000,
             "loss_mask": torch.rand(2, seq), "position_ids": torch.arange(seq).repeat(2, 1)}
    seen = []
    for rank in range(cp):
        monkeypatch.setattr(ps, "get_context_parallel_world_size", lambda: cp)
        monkeypatch.setattr(ps, "get_context_parallel_rank", lambda r=rank: r)
        reference = get_batch_on_this_cp_rank({k: v.clone() for k, v in batch.items()})
        ours = split_batch(batch, cp, rank)
        for key in batch:
            assert torch.equal(ours[key], reference[key]), (key, rank)
        seen += cp_token_index(seq, cp, rank).tolist()
        # labels travel with their inputs
        assert torch.equal(ours["labels"], ours["input_ids"] + 1000)
    assert sorted(seen) == list(range(seq))  # every position on exactly one rank


def test_bshd_split_refuses_a_length_it_cannot_cut():
    with pytest.raises(Exception, match=r"multiple of 2 × context_parallel_size \(4\)"):
        cp_token_index(10, 2, 0)


def test_thd_split_per_sequence_as_transformer_engine_does():
    # 3 sequences padded to 8, 4, 4 tokens; CP=2 -> chunks of 2, 1, 1; rank r keeps chunks r and 3-r of each
    cu = torch.tensor([0, 8, 12, 16], dtype=torch.int32)
    assert thd_token_index(cu, 2, 0).tolist() == [0, 1, 6, 7, 8, 11, 12, 15]
    assert thd_token_index(cu, 2, 1).tolist() == [2, 3, 4, 5, 9, 10, 13, 14]
    with pytest.raises(Exception, match="multiples of 2 × context_parallel_size"):
        thd_token_index(torch.tensor([0, 6, 12]), 2, 0)


def _sample(i: int, n: int) -> TokenizedSample:
    ids = list(range(100 * i, 100 * i + n))
    return TokenizedSample(f"s{i}", ids, [0] * (n // 2) + [1] * (n - n // 2))


def test_packed_rows_padded_for_cp_split_into_whole_samples():
    rows = pack_samples([_sample(1, 6), _sample(2, 4), _sample(3, 9)], seq_length=24, pad_id=-1, pad_multiple=4)
    assert len(rows) == 1
    batch = collate(rows, build_mask=False)
    params = packed_seq_params(batch["segment_ids"], pad_multiple=4)
    # real lengths 5, 3, 8 (n-1 positions each) at padded offsets 0, 8, 12, 20; the tail padding (4) is a
    # segment of its own with real length 0; max_seqlen is the longest padded segment, not the row
    assert params.cu_seqlens_q.tolist() == [0, 5, 8, 16, 16]
    assert params.cu_seqlens_q_padded.tolist() == [0, 8, 12, 20, 24]
    assert params.max_seqlen_q == params.max_seqlen_kv == 8
    batch["packed_seq_params"] = params
    parts = [split_batch(batch, 2, r) for r in range(2)]
    for key in ("input_ids", "labels", "loss_mask", "segment_ids", "position_ids"):
        merged = torch.cat([p[key] for p in parts], dim=1)
        assert merged.shape == batch[key].shape
        # the same multiset of (input, label, mask) triples as the unsplit row: nothing lost or doubled
        assert sorted(merged[0].tolist()) == sorted(batch[key][0].tolist()), key
    assert parts[0]["packed_seq_params"].cu_seqlens_q.tolist() == [0, 5, 8, 16, 16]  # TE wants the global ones
    assert sum(float(p["loss_mask"].sum()) for p in parts) == float(batch["loss_mask"].sum())


def test_cp_split_loss_equals_full_loss_with_a_real_model(megatron_single):
    """Per-token losses of the unsplit batch (a real forward), split as CP would: summed over
    the ranks, the masked loss and token count are the full sequence's."""
    from nemo_thinkrm.algorithms.lm_loss import masked_token_loss
    from nemo_thinkrm.config.model import ModelConfig
    from nemo_thinkrm.config.parallel import ParallelConfig
    from nemo_thinkrm.models.builder import build_gpt_model

    torch.manual_seed(0)
    model = build_gpt_model(ModelConfig(), ParallelConfig()).eval()
    ids = torch.randint(0, 512, (2, 17))
    batch = {"input_ids": ids[:, :-1], "labels": ids[:, 1:], "loss_mask": (torch.rand(2, 16) > 0.25).float()}
    with torch.no_grad():
        per_token = model(batch["input_ids"], None, None, labels=batch["labels"])
    full, full_n, _ = masked_token_loss(batch, per_token)
    total, n = 0.0, 0
    for rank in range(4):
        index = cp_token_index(16, 4, rank)
        part = split_batch(batch, 4, rank)
        loss_sum, count, _ = masked_token_loss(part, per_token.index_select(1, index))
        total, n = total + float(loss_sum), n + int(count)
    assert n == int(full_n) and total == pytest.approx(float(full), rel=1e-6)


@pytest.mark.dist
def test_reduce_stats_sums_over_a_real_cp_group():
    proc = run_torchrun("tests/sft/worker_cp_reduce.py")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (out["cp"], out["world"], out["local_tokens"]) == (2, 2, 8)
    assert out["reduced"]["tokens"] == out["full_tokens"]
    assert out["reduced"]["loss_sum"] == pytest.approx(out["full_sum"], rel=1e-6)


def test_sft_batches_for_transformer_engine_and_cp():
    from nemo_thinkrm.config.errors import ConfigError
    from nemo_thinkrm.trainers.sft import make_batch

    rows = pack_samples([_sample(1, 6), _sample(2, 4)], seq_length=16, pad_id=-1, pad_multiple=4)
    local = make_batch(rows, te=False)  # segment ids 1×5, 0×3, 2×3, 0×5: one run each, no [S, S] mask
    assert "attention_mask" not in local and local["packed_seq_params"].qkv_format == "sbhd"
    assert local["packed_seq_params"].cu_seqlens_q.tolist() == [0, 5, 8, 11, 16]
    te = make_batch(rows, te=True, cp_size=2, cp_rank=1, pad_multiple=4)
    assert "attention_mask" not in te and te["input_ids"].shape == (1, 8)
    assert te["packed_seq_params"].cu_seqlens_q_padded.tolist() == [0, 8, 12, 16]  # tail padding: a segment
    with pytest.raises(ConfigError, match="one packed row per micro-batch"):
        make_batch(rows * 2, te=True)


def test_cp_layouts_are_checked_up_front():
    from nemo_thinkrm.config.errors import ConfigError
    from nemo_thinkrm.config.parallel import ParallelConfig
    from nemo_thinkrm.config.data import DataConfig
    from nemo_thinkrm.config.rl import GRPOConfig
    from nemo_thinkrm.config.supervised import SFTConfig, SFTDataConfig

    cp2 = ParallelConfig(context_parallel_size=2)
    with pytest.raises(ConfigError, match=r"seq_length \(510\) must be a multiple of 2 × parallel.context_parallel"):
        SFTConfig(data=SFTDataConfig(train_path="x.jsonl"), parallel=cp2, seq_length=510).validate()
    with pytest.raises(ConfigError, match="context_parallel_size > 1 is for SFT"):
        GRPOConfig(parallel=cp2, data=DataConfig(path="x.jsonl")).validate()
