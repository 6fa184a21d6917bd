"""A user's data file with one torn line and one mistyped row: ``thinkrm sft`` and ``thinkrm eval``
skip and count those two rows (file:line in the log) and run, instead of dying in ``datasets``."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_cli


@pytest.fixture(scope="module")
def dirty_files(tmp_path_factory):
    from nemo_thinkrm.data.synthetic import judge_messages, make_arithmetic_pairs

    root = tmp_path_factory.mktemp("dirty")
    pairs = make_arithmetic_pairs(20, seed=0)
    pref = [json.dumps({"id": p.id, "prompt": p.question, "response_a": p.response_a, "response_b": p.response_b,
                        "label": p.label}) for p in pairs]
    pref[5] = json.dumps({**json.loads(pref[5]), "response_a": 5})  # a number among strings
    pref.insert(3, "{not json")  # a torn line: line 4
    sft = [json.dumps({"messages": judge_messages(p), "response": p.trace}) for p in pairs]
    sft[4] = json.dumps({"prompt": "x", "response": 5})
    sft.insert(2, "{not json")  # line 3
    (root / "pairs.jsonl").write_text("\n".join(pref) + "\n")
    (root / "sft.jsonl").write_text("\n".join(sft) + "\n")
    return root


def test_sft_skips_and_counts_a_torn_line_and_a_mistyped_row(dirty_files, tmp_path):
    proc = run_cli("sft", "--config-name", "tiny_sft", f"run_dir={tmp_path}",
                   f"data.train_path={dirty_files}/sft.jsonl", "train_iters=1", "data.val_fraction=0", "checkpoint.save_interval=0", "seq_length=512",
                   "global_batch_size=4")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "DatasetGenerationError" not in out
    assert "skipped 2 of 21 rows as bad" in out and "sft.jsonl:3: not valid JSON" in out
    assert "sft.jsonl:6: 'response' must be a string, got int" in out
    assert (tmp_path / "metrics.jsonl").read_text().count('"kind": "train"') == 1


def test_eval_skips_and_counts_a_torn_line_and_a_mistyped_row(dirty_files, tmp_path):
    proc = run_cli("eval", "--config-name", "tiny_eval", f"run_dir={tmp_path}", "data=generic",
                   f"data.path={dirty_files}/pairs.jsonl", "data.limit=null", "template=compact_binary",
                   "generation.backend=scripted", "voting.m=1")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "could not read json" not in out
    assert "pairs.jsonl:4: not valid JSON" in out and "(pairs.jsonl:7): field 'response_a' must be a string" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_examples"] == 19 and "19 records from 21 rows" in metrics["data_load"]
    assert "skipped 2 bad" in metrics["data_load"]
