"""The Bradley-Terry reward model (``thinkrm rm``): the loss against hand-computed values, packed
pairs against each sequence scored alone, TP = 2 against TP = 1 from the same 🤗 start, and the
tiny recipe learning to rank the right sum above a wrong one on held-out pairs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from nemo_thinkrm.algorithms.bt_loss import bradley_terry, bradley_terry_loss
from nemo_thinkrm.data.reward_pairs import PairSample, collate_pairs, pack_pairs
from tests.helpers import run_cli, run_torchrun


def test_bradley_terry_by_hand():
    loss = bradley_terry(torch.tensor([2.0, 0.5]), torch.tensor([1.0, 1.5]))
    # −log σ(1) = log(1 + e^−1), −log σ(−1) = log(1 + e)
    assert torch.allclose(loss, torch.tensor([math.log(1 + math.exp(-1)), math.log(1 + math.e)]), atol=1e-6)
    with_margin = bradley_terry(torch.tensor([2.0]), torch.tensor([1.0]), torch.tensor([1.0]))
    assert torch.allclose(with_margin, torch.tensor([math.log(2.0)]), atol=1e-6)  # −log σ(0)
    assert torch.isfinite(bradley_terry(torch.tensor([-200.0]), torch.tensor([200.0]))).all()


def test_loss_reads_each_pairs_last_tokens():
    # two rows; row 0 holds one pair (ends 1, 3), row 1 two pairs (ends 1, 2 and 4, 5)
    scores = torch.tensor([[0.0, 3.0, 0.0, 1.0, 9.0, 9.0],
                           [0.0, 2.0, 2.0, 0.0, -1.0, 0.5]]).unsqueeze(-1)
    batch = {"pair_index": torch.tensor([[[1, 3], [-1, -1]], [[1, 2], [4, 5]]]),
             "pair_margin": torch.zeros(2, 2)}
    loss_sum, count, stats = bradley_terry_loss(batch, scores)
    expected = bradley_terry(torch.tensor([3.0, 2.0, -1.0]), torch.tensor([1.0, 2.0, 0.5])).sum()
    assert int(count) == 3 and torch.allclose(loss_sum, expected)
    assert float(stats["right"]) == 1.5  # one right, one tie (0.5), one wrong
    assert float(stats["reward_gap_sum"]) == pytest.approx(2.0 + 0.0 - 1.5)


def test_pack_pairs_layout():
    pairs = [PairSample("a", [5, 6, 7], [5, 6, 8, 9]), PairSample("b", [1, 2], [1, 3]), PairSample("c", [4] * 9, [4])]
    rows = pack_pairs(pairs, 12, pad_id=0)
    assert [r.ids for r in rows] == [["a", "b"], ["c"]]  # first fit: 7 + 4 tokens, then 10
    r = rows[0]
    assert r.input_ids == [5, 6, 7, 5, 6, 8, 9, 1, 2, 1, 3, 0]
    assert r.segment_ids == [1, 1, 1, 2, 2, 2, 2, 3, 3, 4, 4, 0]
    assert r.position_ids == [0, 1, 2, 0, 1, 2, 3, 0, 1, 0, 1, 0]
    assert r.pairs == [(2, 6), (8, 10)]  # the last token of each response
    batch = collate_pairs(rows)
    assert batch["pair_index"].tolist() == [[[2, 6], [8, 10]], [[8, 9], [-1, -1]]]


def test_packed_pairs_score_as_each_sequence_alone(tiny_hf_dirs):
    """Scores read from a packed row equal each sequence's score run on its own (segment attention,
    restarting positions), through megatron with the reward head in place."""
    from nemo_thinkrm.config.parallel import ParallelConfig
    from nemo_thinkrm.data.packing import segment_params
    from nemo_thinkrm.models.loading import model_config_for_hf_dir
    from nemo_thinkrm.models.reward_head import attach_reward_head
    from nemo_thinkrm.runtime.distributed import init_distributed
    from nemo_thinkrm.checkpoint.convert import load_initial_weights
    from nemo_thinkrm.training.engine import build_engine_model

    cfg = model_config_for_hf_dir(tiny_hf_dirs["llama"])
    init_distributed(ParallelConfig(), cfg)
    model = build_engine_model(cfg, ParallelConfig(), wrap_ddp=False)[0]
    load_initial_weights(model, str(tiny_hf_dirs["llama"]), cfg)
    attach_reward_head(model, seed=3).eval()
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(1, 200, (n,), generator=g).tolist() for n in (7, 5, 9, 4)]
    pairs = [PairSample("p0", seqs[0], seqs[1]), PairSample("p1", seqs[2], seqs[3])]
    rows = pack_pairs(pairs, 32, pad_id=0)
    batch = collate_pairs(rows)
    with torch.no_grad():
        packed = model(batch["input_ids"], batch["position_ids"], None,
                       packed_seq_params=segment_params(batch["segment_ids"]))[0, :, 0]
        alone = [model(torch.tensor([s]), torch.arange(len(s)).unsqueeze(0), None)[0, -1, 0] for s in seqs]
    ends = [e for pair in rows[0].pairs for e in pair]
    assert torch.allclose(packed[ends], torch.stack(alone), atol=1e-5), (packed[ends], alone)


def _train_losses(run_dir) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r.get("kind") == "train"]


@pytest.mark.dist
@pytest.mark.slow
def test_tp2_equals_tp1(tiny_hf_dirs, tmp_path):
    common = ["rm", "--config-name", "tiny_rm", f"model.hf_path={tiny_hf_dirs['llama']}", "train_iters=4",
              "eval_interval=0", "data.path=builtin:arithmetic:256"]
    one = run_cli(*common, f"run_dir={tmp_path / 'tp1'}")
    assert one.returncode == 0, one.stderr[-3000:]
    run_torchrun("-m nemo_thinkrm", *common, f"run_dir={tmp_path / 'tp2'}", "parallel.tensor_model_parallel_size=2")
    a, b = _train_losses(tmp_path / "tp1"), _train_losses(tmp_path / "tp2")
    assert len(a) == len(b) == 4 and a[0] != a[-1]
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-5, (a, b)


@pytest.mark.slow
def test_tiny_recipe_ranks_held_out_pairs(tmp_path):
    proc = run_cli("rm", "--config-name", "tiny_rm", f"run_dir={tmp_path}", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if r.get("kind") == "val"]
    assert val and val[-1]["val_pairs"] >= 100
    assert val[-1]["val_accuracy"] >= 0.90, val  # held-out pairs: none of them occurs in training
