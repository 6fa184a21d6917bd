"""``thinkrm self-train`` end to end at toy size: killed after round 0 (a round boundary), killed again
inside round 1's SFT (mid-round), resumed each time, and what the stages were shown.

Too short to learn (a few SFT steps), so it asserts what such a run can show: each restart skips
the steps already done and the interrupted SFT resumes from its checkpoint; every proving prompt
shows its row's label and no judge prompt shows one; the per-round books and report exist once."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import run_cli

pytestmark = [pytest.mark.slow]

SMALL = ["task_pairs=300", "heldout_pairs=12", "unlabeled_limit=16", "traced_share=0.1", "labeled_share=0.05",
         "rounds=1", "prover_sft_iters=6", "judge_sft_iters=6", "round_sft_iters=12", "heldout_votes=1",
         "baseline=false", "votes=1", "min_agreement=1.0"]
SFT = ["seq_length=512", "data.val_fraction=0", "checkpoint.save_interval=4"]


def _sft(*more: str) -> str:
    return "overrides.sft=[" + ",".join(f"'{x}'" for x in [*SFT, *more]) + "]"


def test_self_train_resumes_at_a_round_boundary_and_mid_round(tmp_path):
    root = tmp_path / "st"
    args = ["self-train", "--config-name", "tiny_self_train", f"run_dir={root}", *SMALL]

    first = run_cli(*args, _sft(), "fail_after_round=0")
    assert first.returncode == 17, first.stderr[-3000:]
    assert "stopping after round 0" in first.stderr
    done = {p.relative_to(root / ".done").as_posix() for p in (root / ".done").rglob("*") if p.is_file()}
    assert done == {"round_0/teacher", "round_0/teacher_as_judge", "round_0/prover", "round_0/prover_labeled",
                    "round_0/judge", "round_0/eval"}
    assert not (root / "round_1").exists()

    # mid-round: round 1's SFT stops after step 8 (checkpointed at 4 and 8) as a killed job would
    second = run_cli(*args, _sft("checkpoint.fail_after_step=8"))
    assert second.returncode == 2 and "stage 'round_1/judge' failed (exit 17)" in second.stderr, second.stderr[-3000:]
    log = second.stdout + second.stderr  # Hydra's console log goes to stdout
    assert "[round_0/judge] already done" in log and "[round_0/eval] already done" in log
    assert (root / ".done" / "round_1" / "label").is_file() and not (root / ".done" / "round_1" / "judge").exists()

    third = run_cli(*args, _sft())
    assert third.returncode == 0, third.stderr[-3000:]
    assert "[round_1/label] already done" in third.stdout + third.stderr
    sft_log = (root / "logs" / "round_1" / "judge.log").read_text()
    assert re.search(r"resumed from .* \(step 8\)", sft_log), sft_log[-2000:]
    steps = [json.loads(x)["step"] for x in (root / "round_1" / "judge" / "metrics.jsonl").read_text().splitlines()
             if json.loads(x).get("kind") == "train"]
    assert steps == list(range(1, 13)), steps  # 1-8 before the kill, 9-12 after, none twice

    # the books: one line per round, the report, the filter's counts
    rounds = [json.loads(x) for x in (root / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds] == [0, 1]
    assert rounds[1]["unlabeled_judged"] == 16 and 0 <= rounds[1]["pseudo_labeled"] <= 16
    assert rounds[1]["sft_steps"] == 12 and 0 <= rounds[1]["heldout_accuracy"] <= 1
    summary = json.loads((root / "summary.json").read_text())
    assert summary["data"] == {"traced": 30, "labeled": 15, "unlabeled": 16, "heldout": 12}
    assert "| 1 | " in (root / "report.md").read_text()

    # what each model was shown: the proving model its row's label, the judge never a label
    proving = [json.loads(x) for x in (root / "round_0" / "traced_proving.jsonl").read_text().splitlines()]
    assert proving and all(f"Response {r['label']} is the correct one." in r["messages"][0]["content"]
                           for r in proving)
    judge_rows = [json.loads(x) for x in (root / "round_1" / "judge_train.jsonl").read_text().splitlines()]
    assert len(judge_rows) >= len(proving)
    assert not any("is the correct one" in r["messages"][0]["content"] for r in judge_rows)
    label_cfg = (root / "round_1" / "label" / "config.yaml").read_text()
    assert "template: compact_binary" in label_cfg and "swap: both" in label_cfg
