"""Re-running a run directory with edited settings: the new learning rate (and schedule, betas)
apply from the resumed step and are logged by key, another architecture is a one-line error, and
``config.yaml`` holds the values the run uses (architecture from ``model.hf_path``, ``train_iters``
from ``num_epochs``). Before, megatron's scheduler silently kept the checkpoint's LR."""

from __future__ import annotations

import json

import pytest
import yaml

from nemo_thinkrm.metrics_log import read_metrics
from tests.helpers import run_cli

pytestmark = pytest.mark.slow

BASE = ("--config-name", "tiny_sft", "data.val_fraction=0", "checkpoint.save_interval=2", "optim.schedule=constant",
        "optim.warmup_fraction=0")


def test_resume_honours_a_new_lr_and_refuses_a_new_architecture(tmp_path):
    first = run_cli("sft", *BASE, f"run_dir={tmp_path}", "train_iters=4", "optim.lr=1e-3")
    assert first.returncode == 0, first.stderr[-3000:]
    again = run_cli("sft", *BASE, f"run_dir={tmp_path}", "train_iters=6", "optim.lr=2e-3", "optim.adam_beta2=0.99")
    assert again.returncode == 0, again.stderr[-3000:]
    lrs = {r["step"]: r["lr"] for r in read_metrics(tmp_path, kind="train")}
    assert [lrs[s] for s in range(1, 7)] == pytest.approx([1e-3] * 4 + [2e-3] * 2)
    log = again.stdout + again.stderr
    assert "changed settings (the new values apply from step 5)" in log
    assert "optim.adam_beta2: 0.95 -> 0.99" in log and "optim.lr: 0.001 -> 0.002" in log
    assert "train_iters: 4 -> 6" in log
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["optim"]["lr"] == 2e-3

    other = run_cli("sft", *BASE, f"run_dir={tmp_path}", "train_iters=8", "model.num_layers=3")
    assert other.returncode == 2 and "Traceback" not in other.stderr, other.stderr[-3000:]
    assert "holds another architecture" in other.stderr and "model.num_layers: checkpoint 2, now 3" in other.stderr


def test_config_yaml_holds_the_resolved_architecture_and_steps(tiny_hf_dirs, tmp_path):
    proc = run_cli("sft", *BASE, f"run_dir={tmp_path}", f"model.hf_path={tiny_hf_dirs['qwen3']}",
                   "data.train_path=builtin:arithmetic:64", "num_epochs=1", "checkpoint.save_interval=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    hf = json.loads((tiny_hf_dirs["qwen3"] / "config.json").read_text())
    assert (cfg["model"]["family"], cfg["model"]["kv_channels"]) == ("qwen3", hf["head_dim"])
    assert cfg["model"]["tie_word_embeddings"] is True
    steps = [r["step"] for r in read_metrics(tmp_path, kind="train")]
    assert cfg["train_iters"] == len(steps) == steps[-1] and cfg["train_iters"] != 60
