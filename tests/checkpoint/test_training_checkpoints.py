"""Training checkpoints: exact kill-and-resume (1 process and DP=2), keep-last-k,
``latest`` pointer, and broken checkpoints skipped in favour of the previous one."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from nemo_thinkrm.checkpoint.training_state import Checkpointer
from nemo_thinkrm.metrics_log import read_metrics
from tests.helpers import run_cli

STAGE = ["sft", "--config-name", "tiny_sft"]
ARGS = ["train_iters=6", "checkpoint.save_interval=2", "data.train_path=builtin:arithmetic:32",
        "data.val_fraction=0", "seq_length=256", "checkpoint.keep_last=2"]


def _losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run_dir, "train")}


def test_kill_and_resume_reproduces_uninterrupted_losses(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert run_cli(*STAGE, f"run_dir={full}", *ARGS).returncode == 0
    proc = run_cli(*STAGE, f"run_dir={killed}", *ARGS, "checkpoint.fail_after_step=4")
    assert proc.returncode == 17  # the injected hard exit, like a killed job
    assert sorted(_losses(killed)) == [1, 2, 3, 4]
    proc = run_cli(*STAGE, f"run_dir={killed}", *ARGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in proc.stdout + proc.stderr and "(step 4)" in proc.stdout + proc.stderr
    want, got = _losses(full), _losses(killed)
    assert sorted(got) == list(range(1, 7))
    for step in range(5, 7):
        assert got[step] == want[step], (step, got[step], want[step])  # bit-identical on CPU fp32
    ckpts = sorted(p.name for p in (killed / "checkpoints").glob("step_*"))
    assert ckpts == ["step_00000004", "step_00000006"]  # keep_last=2
    assert (killed / "checkpoints" / "latest").read_text().strip() == "step_00000006"
    # one data-parallel rank on gloo trains with the plain optimizer (config.parallel.resolve_for), and
    # says so in the run config and the checkpoint; a resume by the other kind is refused by name
    assert "use_distributed_optimizer: false" in (killed / "config.yaml").read_text()
    state_file = killed / "checkpoints" / "step_00000006" / "train_state.json"
    state = json.loads(state_file.read_text())
    assert state["optimizer"] == "plain"
    state_file.write_text(json.dumps({**state, "optimizer": "distributed"}))
    proc = run_cli(*STAGE, f"run_dir={killed}", *ARGS[1:], "train_iters=8")
    assert proc.returncode != 0
    assert "holds distributed optimizer state but this run uses the plain optimizer" in proc.stderr


@pytest.mark.dist
def test_kill_and_resume_data_parallel(tmp_path):
    """DP=2 with the distributed optimizer: optimizer state is sharded over ranks."""
    from tests.helpers import run_torchrun

    main = "-m nemo_thinkrm"
    full, killed = tmp_path / "full", tmp_path / "killed"
    run_torchrun(main, *STAGE, f"run_dir={full}", *ARGS)
    proc = run_torchrun(main, *STAGE, f"run_dir={killed}", *ARGS, "checkpoint.fail_after_step=4",
                        check=False)
    assert proc.returncode != 0 and "fault injection" in proc.stderr
    run_torchrun(main, *STAGE, f"run_dir={killed}", *ARGS)
    want, got = _losses(full), _losses(killed)
    for step in (5, 6):
        assert abs(got[step] - want[step]) <= 1e-6, (step, got[step], want[step])
    assert json.loads((killed / "checkpoints" / "step_00000006" / "train_state.json").read_text())[
        "optimizer"] == "distributed"


def _fake_checkpoint(root: Path, step: int, complete: bool = True, metadata: bool = True) -> Path:
    d = root / f"step_{step:08d}"
    (d / "weights").mkdir(parents=True)
    if metadata:
        (d / "weights" / "metadata.json").write_text("{}")
    (d / "train_state.json").write_text(json.dumps({"step": step, "future_field": 1}))
    if complete:
        (d / "COMPLETE").write_text("ok")
    return d


def test_broken_checkpoints_are_skipped_with_a_warning(tmp_path, caplog):
    root = tmp_path / "checkpoints"
    _fake_checkpoint(root, 2)
    _fake_checkpoint(root, 4)
    _fake_checkpoint(root, 6, complete=False)        # interrupted save
    _fake_checkpoint(root, 8, metadata=False)        # weights never finished
    (root / ".tmp-step_00000010").mkdir()            # save in progress
    (root / "latest").write_text("step_00000008\n")
    with caplog.at_level(logging.WARNING):
        latest = Checkpointer(root).latest()
    assert latest == root / "step_00000004"
    text = caplog.text
    assert "step_00000006" in text and "COMPLETE" in text
    assert "step_00000008" in text and "metadata.json" in text
    assert "'latest' points to" in text


def test_latest_prefers_newest_sound_checkpoint_and_ignores_dir_names(tmp_path):
    root = tmp_path / "checkpoints"
    _fake_checkpoint(root, 3)
    newest = _fake_checkpoint(root, 5)
    # the step comes from train_state.json, not the directory name
    shutil.move(str(newest), str(root / "renamed"))
    (root / "latest").write_text("step_00000003\n")
    assert Checkpointer(root).latest() == root / "renamed"
    assert Checkpointer(tmp_path / "nothing").latest() is None


class _FusedAdamLike(torch.optim.Optimizer):
    """The shape of Transformer Engine's ``FusedAdam`` state (transformer_engine/pytorch/optimizers/
    fused_adam.py, v1.13-v2.18): exp_avg / exp_avg_sq per parameter, the step per param group, and a
    ``state_dict()`` that unscales every per-parameter key by name (``get_unscaled_state``)."""

    name_to_dtype_map = {"exp_avg": torch.float32, "exp_avg_sq": torch.float32, "master_param": torch.float32}

    def __init__(self, params):
        super().__init__(params, {"lr": 1e-3})

    def get_unscaled_state(self, param, state_name):
        dtype = self.name_to_dtype_map[state_name]  # KeyError: 'step' on a torch-style state
        return self.state[param][state_name].to(dtype)

    def state_dict(self):
        sd = super().state_dict()
        params = [p for g in self.param_groups for p in g["params"]]
        sd["state"] = {i: {k: self.get_unscaled_state(params[i], k) for k in self.state[params[i]]}
                       for i in range(len(params)) if params[i] in self.state}
        return sd


def test_resume_helpers_leave_a_fused_adams_state_as_it_keeps_it():
    """Issue 27 B8: the resume helpers put a torch-style per-parameter "step" into every optimizer's state;
    with TE's FusedAdam (what megatron uses whenever TE imports) the next save then raised KeyError: 'step'."""
    from types import SimpleNamespace

    from nemo_thinkrm.checkpoint.training_state import _ensure_adam_state, _restore_adam_steps

    params = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(4))]
    fused = _FusedAdamLike(params)
    fused.param_groups[0]["step"] = 7
    fused.state[params[0]].update(exp_avg=torch.ones(3, 2), exp_avg_sq=torch.ones(3, 2))
    wrapper = SimpleNamespace(optimizer=fused)
    _ensure_adam_state(wrapper)
    _restore_adam_steps(wrapper)
    sd = fused.state_dict()  # raised KeyError before the fix
    assert set(sd["state"][0]) == {"exp_avg", "exp_avg_sq"} and sd["param_groups"][0]["step"] == 7
    # torch's AdamW still gets its per-parameter steps back from the group value
    adam = torch.optim.AdamW(params, lr=1e-3)
    adam.param_groups[0]["step"] = 5
    _ensure_adam_state(SimpleNamespace(optimizer=adam))
    _restore_adam_steps(SimpleNamespace(optimizer=adam))
    assert [float(adam.state[p]["step"]) for p in params] == [5.0, 5.0]
