"""``thinkrm sft`` end to end: TP=2 / PP=2 / DP=2 losses equal TP=1 for 5 steps (tolerance 2e-5
absolute on losses ~6; fp32 CPU, only reduction order differs), overfitting 32 traces, and the checkpoint
evaluating with ``thinkrm eval``. Exact kill-and-resume of SFT: tests/checkpoint/test_training_checkpoints.py."""

from __future__ import annotations

import json

import pytest

from nemo_thinkrm.metrics_log import read_metrics
from tests.helpers import run_cli, run_torchrun

BASE = ["--config-name", "tiny_sft", "train_iters=5", "data.train_path=builtin:arithmetic:64",
        "data.val_fraction=0", "global_batch_size=4", "micro_batch_size=2", "checkpoint.save_interval=0",
        "optim.warmup_fraction=0"]


def _losses(run_dir):
    return [r["loss"] for r in read_metrics(run_dir, "train")]


@pytest.fixture(scope="module")
def start(tiny_hf_dirs) -> str:
    """All layouts start from the same 🤗 weights (random init differs per pipeline stage,
    as in megatron, so layouts are compared from a checkpoint — the real use anyway)."""
    return f"model.hf_path={tiny_hf_dirs['llama']}"


@pytest.fixture(scope="module")
def tp1_run(tmp_path_factory, start):
    run_dir = tmp_path_factory.mktemp("sft") / "tp1"
    proc = run_cli("sft", *BASE, start, f"run_dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def tp1_losses(tp1_run):
    losses = _losses(tp1_run)
    assert len(losses) == 5 and losses[-1] < losses[0]
    return losses


@pytest.mark.dist
@pytest.mark.parametrize("layout", ["parallel=tp2", "parallel=pp2", "parallel=single"], ids=["tp2", "pp2", "dp2"])
def test_parallel_layouts_match_tp1(layout, tp1_losses, start, tmp_path):
    run_dir = tmp_path / "run"
    run_torchrun("-m nemo_thinkrm", "sft", *BASE, start, f"run_dir={run_dir}", layout)
    for step, (a, b) in enumerate(zip(_losses(run_dir), tp1_losses), start=1):
        assert abs(a - b) <= 2e-5, (layout, step, a, b)


@pytest.mark.slow
def test_overfits_32_traces(tmp_path):
    run_dir = tmp_path / "overfit"
    proc = run_cli("sft", "--config-name", "tiny_sft", f"run_dir={run_dir}", "data.train_path=builtin:arithmetic:32",
                   "data.val_fraction=0", "train_iters=120", "global_batch_size=4", "micro_batch_size=4",
                   "optim.lr=5e-3", "optim.min_lr=5e-4", "checkpoint.save_interval=0", "model.hidden_size=128",
                   "model.ffn_hidden_size=256", "seq_length=512")
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = _losses(run_dir)
    assert losses[-1] < 0.05, losses[-10:]


def test_checkpoint_evaluates_with_thinkrm_eval(tp1_run, tmp_path):
    run_dir = tp1_run
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"What is {i} + 1?", "response_a": f"{i + 1}",
                                        "response_b": f"{i + 2}", "label": "A"}) + "\n" for i in range(4)))
    ev = tmp_path / "eval"
    proc = run_cli("eval", "--config-name", "tiny_eval", f"run_dir={ev}", f"model.hf_path={run_dir}",
                   "data=generic", f"data.path={data}", "data.limit=null", "voting.m=1",
                   "generation.max_new_tokens=8")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (ev / "judge_hf" / "config.json").is_file()  # the training checkpoint was converted for the engine
    assert json.loads((ev / "metrics.json").read_text())["n_samples"] == 4
