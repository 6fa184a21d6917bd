"""``thinkrm grpo`` end to end on CPU: metrics per step, exact kill-and-resume, config errors."""

from __future__ import annotations

import pytest

from nemo_thinkrm.data.synthetic import make_arithmetic_pairs, write_preference_jsonl
from nemo_thinkrm.metrics_log import read_metrics
from tests.conftest import run_cli

KEYS = ("reward_mean", "accuracy", "invalid_rate", "response_length", "truncation_rate", "kl", "clip_fraction", "entropy",
        "pg_loss", "grad_norm", "time_rollout_s", "time_logprob_s", "time_update_s")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    path = tmp_path_factory.mktemp("grpo") / "pairs.jsonl"
    write_preference_jsonl(make_arithmetic_pairs(64, seed=5, max_operand=9, ops="+"), path)
    return path


@pytest.fixture(scope="module")
def sft_start(tiny_hf_dirs, pairs, tmp_path_factory) -> str:
    """A judge that already writes valid verdicts (scripted-teacher traces → 40 SFT steps), so
    rewards differ within groups and the policy really moves."""
    root = tmp_path_factory.mktemp("start")
    proc = run_cli("synth", "--config-name", "tiny_synth", f"run_dir={root / 'synth'}", "data=generic",
                   f"data.path={pairs}", "data.limit=null", "template=compact_binary", "generation.backend=scripted",
                   "samples_per_pair=1", f"model.hf_path={tiny_hf_dirs['llama']}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_cli("sft", "--config-name", "tiny_sft", f"run_dir={root / 'sft'}",
                   f"data.train_path={root / 'synth' / 'sft.jsonl'}", f"model.hf_path={tiny_hf_dirs['llama']}",
                   "train_iters=40", "data.val_fraction=0", "seq_length=512", "checkpoint.save_interval=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return str(root / "sft")


def _args(run_dir, start, pairs, *extra):
    return ["grpo", "--config-name", "tiny_grpo", f"run_dir={run_dir}", f"model.hf_path={start}",
            f"data.path={pairs}", "train_iters=4", "prompts_per_step=2", "group_size=4", "global_batch_size=4",
            "micro_batch_size=2", "generation.max_new_tokens=64", "checkpoint.save_interval=2", *extra]


def test_grpo_steps_log_metrics_and_resume_exactly(sft_start, pairs, tmp_path):
    start = sft_start
    full = tmp_path / "full"
    proc = run_cli(*_args(full, start, pairs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_metrics(full, "train")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for key in KEYS:
        assert key in rows[0], key
    assert rows[0]["response_length"] > 0 and rows[0]["entropy"] > 0
    assert max(r["invalid_rate"] for r in rows) < 1.0          # the SFT start writes verdicts
    assert rows[-1]["kl"] > 0 and rows[-1]["grad_norm"] > 0    # the policy moved away from the reference

    killed = tmp_path / "killed"
    assert run_cli(*_args(killed, start, pairs, "checkpoint.fail_after_step=2")).returncode == 17
    proc = run_cli(*_args(killed, start, pairs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = {r["step"]: r for r in read_metrics(killed, "train")}
    for row in rows[2:]:
        for key in ("reward_mean", "response_length", "kl", "pg_loss", "grad_norm"):
            assert got[row["step"]][key] == row[key], (row["step"], key)


def test_grpo_needs_a_start_checkpoint(pairs, tmp_path):
    proc = run_cli("grpo", "--config-name", "tiny_grpo", f"run_dir={tmp_path}", f"data.path={pairs}",
                   "model.hf_path=null")
    assert proc.returncode == 2 and "model.hf_path is required" in proc.stderr


def test_vllm_rollouts_refuse_model_parallel_layouts(pairs, tmp_path):
    proc = run_cli("grpo", "--config-name", "tiny_grpo", f"run_dir={tmp_path}", f"data.path={pairs}",
                   "model.hf_path=/x", "rollout_engine=vllm", "parallel.tensor_model_parallel_size=2")
    assert proc.returncode == 2 and "rollout_engine=megatron for larger layouts" in proc.stderr
