"""``thinkrm grpo`` end to end on CPU: the reward rises, metrics per step, exact kill-and-resume, config errors."""

from __future__ import annotations

import json

import pytest

from nemo_thinkrm.data.synthetic import judge_messages, make_arithmetic_pairs, write_preference_jsonl
from nemo_thinkrm.metrics_log import read_metrics
from tests.helpers import run_cli

KEYS = ("reward_mean", "accuracy", "invalid_rate", "response_length", "truncation_rate", "kl", "clip_fraction", "entropy",
        "pg_loss", "grad_norm", "time_rollout_s", "time_logprob_s", "time_update_s")


@pytest.fixture(scope="module")
def task():
    return make_arithmetic_pairs(400, seed=5, max_operand=4, ops="+")


@pytest.fixture(scope="module")
def pairs(task, tmp_path_factory):
    path = tmp_path_factory.mktemp("grpo") / "pairs.jsonl"
    write_preference_jsonl(task, path)
    return path


@pytest.fixture(scope="module")
def sft_start(task, tiny_hf_dirs, tmp_path_factory) -> str:
    """A judge with something for GRPO to fix: its warm-up traces are the scripted teacher's,
    but every other one stops at ``</think>`` without the verdict. After 200 SFT steps it
    reasons right most of the time and then, in about a third of its samples, ends without
    an ``<answer>`` — reward 0 however good the reasoning was."""
    root = tmp_path_factory.mktemp("start")
    rows = []
    for i, pair in enumerate(task):
        trace = pair.trace if i % 2 else pair.trace.split("</think>")[0] + "</think>"
        rows.append({"id": pair.id, "messages": judge_messages(pair) + [{"role": "assistant", "content": trace}]})
    data = root / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run_cli("sft", "--config-name", "tiny_sft", f"run_dir={root / 'sft'}", f"data.train_path={data}",
                   f"model.hf_path={tiny_hf_dirs['llama']}", "train_iters=200", "data.val_fraction=0",
                   "seq_length=512", "checkpoint.save_interval=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return str(root / "sft")


# 4 prompts x 8 samples per step, one constant lr: the first steps of a longer run are the
# same steps as those of a shorter one, so the learning run is also the resume reference.
STEP = ["prompts_per_step=4", "group_size=8", "global_batch_size=16", "micro_batch_size=8", "generation.batch_size=32",
        "generation.max_new_tokens=64", "optim.lr=1e-4"]


def _args(run_dir, start, pairs, *extra):
    return ["grpo", "--config-name", "tiny_grpo", f"run_dir={run_dir}", f"model.hf_path={start}",
            f"data.path={pairs}", *STEP, *extra]


@pytest.fixture(scope="module")
def learning_run(sft_start, pairs, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("learn") / "grpo"
    proc = run_cli(*_args(run_dir, sft_start, pairs, "train_iters=20", "checkpoint.save_interval=0"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    # every step's first samples, as text with their rewards (log_rollouts=4)
    logged = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [s for s in range(1, 21) for _ in range(4)]
    assert all(isinstance(r["text"], str) and r["reward"] in (0.0, 1.0) for r in logged)
    assert {r["reward"] for r in logged} == {0.0, 1.0} and any(r["valid_verdict"] for r in logged)
    return read_metrics(run_dir, "train")


@pytest.mark.slow
def test_grpo_raises_the_reward(learning_run):
    """20 steps x 32 samples (~1 min on 2 cores). Asserted: the mean reward of the last 8 steps
    is at least 0.08 above that of the first 4, and their invalid-verdict rate at most 0.6 times
    as high. Measured here: reward 0.38 -> 0.52, invalid 0.35 -> 0.15 (at lr 3e-4 the format is
    fixed faster but the reasoning degrades and the reward stays flat)."""
    rows = learning_run
    assert [r["step"] for r in rows] == list(range(1, 21))

    def mean(key, part):
        return sum(r[key] for r in part) / len(part)
    first, last = rows[:4], rows[-8:]
    assert mean("reward_mean", last) >= mean("reward_mean", first) + 0.08, [r["reward_mean"] for r in rows]
    assert mean("invalid_rate", last) <= 0.6 * mean("invalid_rate", first), [r["invalid_rate"] for r in rows]


@pytest.mark.slow
def test_grpo_steps_log_metrics_and_resume_exactly(learning_run, sft_start, pairs, tmp_path):
    rows = learning_run
    for key in KEYS:
        assert key in rows[0], key
    assert rows[0]["response_length"] > 0 and rows[0]["entropy"] > 0
    assert rows[-1]["kl"] > 0 and rows[-1]["grad_norm"] > 0    # the policy moved away from the reference

    killed = tmp_path / "killed"
    resume = ["train_iters=4", "checkpoint.save_interval=2"]
    assert run_cli(*_args(killed, sft_start, pairs, *resume, "checkpoint.fail_after_step=2")).returncode == 17
    proc = run_cli(*_args(killed, sft_start, pairs, *resume))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = {r["step"]: r for r in read_metrics(killed, "train")}
    assert sorted(got) == [1, 2, 3, 4]
    for row in rows[:4]:
        for key in ("reward_mean", "response_length", "kl", "pg_loss", "grad_norm"):
            assert got[row["step"]][key] == row[key], (row["step"], key)


def test_grpo_needs_a_start_checkpoint(pairs, tmp_path):
    proc = run_cli("grpo", "--config-name", "tiny_grpo", f"run_dir={tmp_path}", f"data.path={pairs}",
                   "model.hf_path=null")
    assert proc.returncode == 2 and "model.hf_path is required" in proc.stderr


def test_megatron_rollouts_refuse_a_pipelined_policy(pairs, tmp_path):
    proc = run_cli("grpo", "--config-name", "tiny_grpo", f"run_dir={tmp_path}", f"data.path={pairs}",
                   "model.hf_path=/x", "parallel.pipeline_model_parallel_size=2")
    assert proc.returncode == 2 and "use rollout_engine=vllm for a pipelined policy" in proc.stderr


@pytest.mark.slow
def test_gspo_is_a_config_choice(learning_run, sft_start, pairs, tmp_path):
    """policy_loss=gspo (one importance ratio per sample) on the same rollouts: step 1 samples what the
    PPO run sampled (same seed, same start), and then the losses differ."""
    run_dir = tmp_path / "gspo"
    proc = run_cli(*_args(run_dir, sft_start, pairs, "train_iters=2", "checkpoint.save_interval=0",
                          "loss.name=gspo", "loss.aggregation=seq_mean_token_mean", "loss.clip_eps=3e-4",
                          "loss.clip_eps_high=4e-4"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_metrics(run_dir, "train")
    ppo = learning_run[0]
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["reward_mean"] == ppo["reward_mean"] and rows[0]["response_length"] == ppo["response_length"]
    assert rows[0]["pg_loss"] != ppo["pg_loss"] and rows[0]["grad_norm"] > 0


@pytest.mark.slow
def test_dapo_options_are_config_choices(sft_start, pairs, tmp_path):
    """DAPO's dynamic sampling, overlong penalty and truncation mask in one short run, set up so each
    has work: groups of 2 (half of them without signal) and a token limit at the typical length."""
    run_dir = tmp_path / "dapo"
    proc = run_cli(*_args(run_dir, sft_start, pairs, "train_iters=2", "checkpoint.save_interval=0",
                          "prompts_per_step=8", "group_size=2", "generation.max_new_tokens=44",
                          "+reward_weights={binary: 1.0, overlong_penalty: 1.0}",
                          "+reward_options={overlong_window: 4}",
                          "filters=[dynamic_sampling,mask_truncated]", "resample_rounds=2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_metrics(run_dir, "train")
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert 0 <= r["resample_rounds"] <= 2 and r["groups_kept"] >= r["groups_with_signal"]
        assert r["dropped_groups"] == 1 - r["groups_kept"]     # the fill without signal zeroed by the filter
        assert r["masked_truncated"] == r["truncation_rate"]   # every truncated sample of the batch masked
        assert r["reward_mean"] <= r["accuracy"]               # binary reward + a penalty <= 0
    assert any(r["resample_rounds"] > 0 and r["groups_kept"] > r["groups_with_signal"]
               for r in rows)
    assert any(r["truncation_rate"] > 0 for r in rows) and any(r["reward_mean"] < r["accuracy"] for r in rows)


@pytest.mark.slow
def test_position_consistency_reward_is_a_config_choice(sft_start, pairs, tmp_path):
    """J1's layout and reward in one short run: each group holds one pair in both orders (samples
    alternate the two prompts), its reward needs both verdicts right, and the share of order pairs
    naming the same response is logged per step."""
    run_dir = tmp_path / "j1"
    proc = run_cli(*_args(run_dir, sft_start, pairs, "train_iters=2", "checkpoint.save_interval=0",
                          "swap=both", "reward=consistent", "log_rollouts=8"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_metrics(run_dir, "train")
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert 0 <= r["position_consistency"] <= 1 and r["reward_mean"] <= r["accuracy"]
    logged = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    group = [r for r in logged if r["step"] == 1][:8]       # the first group: one pair, 8 samples
    assert len({r["id"].rsplit(":g", 1)[0] for r in group}) == 1
    # a reward of 1 needs the partner in the other order (samples 2k, 2k+1) right too
    for a, b in zip(group[::2], group[1::2]):
        assert a["reward"] == b["reward"], (a, b)
    proc = run_cli(*_args(tmp_path / "odd", sft_start, pairs, "swap=both", "group_size=3", "prompts_per_step=16",
                          "global_batch_size=16"))
    assert proc.returncode == 2 and "group_size must be even" in proc.stderr
    proc = run_cli(*_args(tmp_path / "one_order", sft_start, pairs, "reward=consistent"))
    assert proc.returncode == 2 and "'consistent' reward needs swap=both" in proc.stderr
