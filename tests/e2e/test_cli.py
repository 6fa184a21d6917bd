"""The CLI end to end: user mistakes give one-line errors (no stack trace), sweeps run
through Hydra multirun and the submitit launcher. (The quickstart has its own test.)"""

from __future__ import annotations

import pytest
import yaml

from nemo_thinkrm.metrics_log import read_metrics
from tests.helpers import run_cli


def test_mistyped_override_is_one_clear_error(tmp_path):
    proc = run_cli("sft", "--config-name", "tiny_sft", f"run_dir={tmp_path}", "optim.learning_rate=1")
    assert proc.returncode != 0
    assert "learning_rate" in proc.stderr and "Traceback" not in proc.stderr


def test_invalid_value_is_one_clear_error(tmp_path):
    proc = run_cli("quickstart", f"run_dir={tmp_path}", "model.family=gpt2")
    assert proc.returncode == 2
    assert "model.family='gpt2' is not one of" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("quickstart", f"run_dir={tmp_path}", "max_operand=20")
    assert proc.returncode == 2 and "max_operand=20" in proc.stderr
    proc = run_cli("quickstart", f"run_dir={tmp_path}", "+overrides.trian=['x=1']")
    assert proc.returncode == 2 and "unknown stages ['trian']" in proc.stderr


def test_unknown_and_unbuilt_stages():
    proc = run_cli("trian")
    assert proc.returncode == 2 and "unknown stage 'trian'" in proc.stderr
    out = run_cli("--help")
    assert out.returncode == 0 and "pairwise-rlhf" in out.stdout


@pytest.mark.slow
def test_multirun_sweep_local_and_submitit(tmp_path):
    for launcher, sub in (("basic", "local"), ("submitit_local", "submitit")):
        run_dir = tmp_path / sub
        proc = run_cli("sft", "--config-name", "tiny_sft", "-m", f"run_dir={run_dir}", "train_iters=2",
                       "data.train_path=builtin:arithmetic:16", "data.val_fraction=0", "seq_length=256",
                       "optim.lr=1e-3,2e-3", f"hydra/launcher={launcher}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        for job, lr in ((0, 1e-3), (1, 2e-3)):
            cfg = yaml.safe_load((run_dir / str(job) / "config.yaml").read_text())
            assert cfg["optim"]["lr"] == lr
            assert len(read_metrics(run_dir / str(job), "train")) == 2


def test_a_second_job_on_a_running_run_directory_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path):
    """Issue 27 A4: before, a second ``thinkrm sft`` on a running job's directory resumed from its
    checkpoint and both appended the same steps to metrics.jsonl."""
    import json
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers import REPO, clean_env

    run_dir = tmp_path / "sft"
    args = ["sft", "--config-name", "tiny_sft", f"run_dir={run_dir}", "checkpoint.save_interval=0"]
    first = subprocess.Popen([sys.executable, "-m", "nemo_thinkrm", *args, "train_iters=100000"], cwd=REPO,
                             env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while not ((run_dir / "metrics.jsonl").exists() and (run_dir / "metrics.jsonl").read_text()):
            assert first.poll() is None and time.time() < deadline, "the first job did not start training"
            time.sleep(0.5)
        second = run_cli(*args, "train_iters=5")
        assert second.returncode == 2, second.stderr[-2000:]
        last = second.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: {run_dir.resolve()} is in use by 'thinkrm sft' (pid {first.pid} on ")
        assert "Traceback" not in second.stderr
        steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert len(steps) == len(set(steps))  # nobody else wrote there
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    third = run_cli(*args, "train_iters=1", "checkpoint.resume=false", "data.val_fraction=0")
    assert third.returncode == 0, third.stderr[-2000:]
    assert f"taking over {run_dir.resolve()} from 'thinkrm sft' (pid {first.pid}" in third.stdout + third.stderr
    assert not (run_dir / ".thinkrm.lock").exists()


def test_megatrons_te_apex_warnings_are_silenced_for_the_cli_and_its_children(monkeypatch):
    proc = run_cli("convert", "--help")
    assert proc.returncode == 0 and "hf-to-nemo" in proc.stdout + proc.stderr
    assert "Transformer Engine and Apex" not in proc.stderr, proc.stderr
    # a process the CLI starts (a rank, a conversion, a vLLM worker) inherits the filter
    import subprocess
    import sys

    from nemo_thinkrm.cli import quiet_known_warnings

    monkeypatch.setenv("PYTHONWARNINGS", "default")
    quiet_known_warnings()
    code = ("import warnings; warnings.warn('Transformer Engine and Apex are not installed. Falling back'); "
            "warnings.warn('our own warning')")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "Transformer Engine" not in child.stderr and "our own warning" in child.stderr
