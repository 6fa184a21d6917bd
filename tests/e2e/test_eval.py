"""``thinkrm eval`` / ``score`` / ``synth`` end to end on CPU (🤗 engine, tiny model, real JudgeBench rows)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nemo_thinkrm.evaluation import predictions as preds
from tests.helpers import JUDGEBENCH, needs_judgebench, run_cli



@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory) -> Path:
    """A tiny random Llama judge with the tiny BPE tokenizer saved beside it (head_dim 32 so vLLM CPU serves it)."""
    from nemo_thinkrm.config.model import TokenizerConfig
    from nemo_thinkrm.examples.tiny_hf import save_tiny_hf_checkpoint, tiny_model_config
    from nemo_thinkrm.models.tokenizer import load_tokenizer

    cfg = tiny_model_config("llama", hidden_size=128, heads=4, kv_heads=2, ffn=256, init_std=0.02,
                            max_positions=16384)  # JudgeBench prompts are long in a 512-token vocabulary
    return save_tiny_hf_checkpoint(cfg, tmp_path_factory.mktemp("judge") / "tiny", tokenizer=load_tokenizer(
        TokenizerConfig()))


@needs_judgebench
def test_eval_writes_predictions_metrics_report_and_resumes(tiny_judge, tmp_path):
    run_dir = tmp_path / "ev"
    args = ["eval", "--config-name", "tiny_eval", f"run_dir={run_dir}", f"model.hf_path={tiny_judge}",
            f"data.path={JUDGEBENCH}", "data.limit=5", "voting.m=2", "swap=both", "generation.max_new_tokens=8"]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = preds.read_rows(run_dir / "predictions.jsonl")
    assert len(rows) == 5 * 2 * 2  # pairs × orders × seeds
    assert {r["seed"] for r in rows} == {0, 1} and {r["swapped"] for r in rows} == {True, False}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("accuracy", "flexible_accuracy", "invalid_rate", "voting", "groups", "position_consistency",
                "judgebench_pair_accuracy", "output_tokens", "failed_requests", "over_length"):
        assert key in metrics, key
    assert set(metrics["voting"]) == {"1", "2"}
    report = (run_dir / "report.md").read_text()
    assert "AVG (per-sample)" in report and "macro" in report and "Voting@m" in report
    for png in ("accuracy_by_section.png", "accuracy_vs_m.png", "output_length_hist.png"):
        assert (run_dir / png).stat().st_size > 1000

    # resume: nothing left to do, rows unchanged
    before = (run_dir / "predictions.jsonl").read_text()
    proc = run_cli(*args)
    assert proc.returncode == 0 and "requests to generate" not in proc.stdout + proc.stderr
    assert (run_dir / "predictions.jsonl").read_text() == before
    # resume after a crash that lost the last 3 rows and tore a line: only those are regenerated
    lines = before.splitlines()
    (run_dir / "predictions.jsonl").write_text("\n".join(lines[:-3]) + "\n" + lines[-3][:40])
    proc = run_cli(*args)
    assert proc.returncode == 0
    assert "3 requests to generate (17 already" in proc.stdout + proc.stderr
    assert len(list(preds.latest_per_request(preds.read_rows(run_dir / "predictions.jsonl")))) == 20

    # score recomputes the same metrics from the saved generations, without a model
    proc = run_cli("score", str(run_dir))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rescored = json.loads((run_dir / "metrics.json").read_text())
    assert rescored["accuracy"] == metrics["accuracy"] and rescored["voting"] == metrics["voting"]


def test_score_plain_jsonl_with_votes_and_sections(tmp_path):
    rows = [
        # pair p1 (label A): seeds 0,1,2 say A, B, A  -> single-sample acc 2/3, vote@3 = A (right)
        {"id": "p1", "label": "A", "seed": 0, "section": "math", "output": "<answer>A</answer>"},
        {"id": "p1", "label": "A", "seed": 1, "section": "math", "output": "x <answer>B</answer>"},
        {"id": "p1", "label": "A", "seed": 2, "section": "math", "output": "<answer>A</answer> trailing"},
        # pair p2 (label B): invalid, B, invalid -> vote@3 = B (right)
        {"id": "p2", "label": "B", "seed": 0, "section": "chat", "output": "no verdict"},
        {"id": "p2", "label": "B", "seed": 1, "section": "chat", "output": "<answer> B </answer>"},
        {"id": "p2", "label": "B", "seed": 2, "section": "chat", "output": "<answer>b</answer>"},
    ]
    path = tmp_path / "outputs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run_cli("score", str(path), "template=binary")
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["accuracy"] == pytest.approx(3 / 6)            # A, -, A, -, B, -  => 3 right of 6
    assert m["flexible_accuracy"] == pytest.approx(4 / 6)   # + 2 invalid × 0.5
    assert m["invalid_rate"] == pytest.approx(2 / 6)
    assert m["voting"]["3"]["accuracy"] == pytest.approx(1.0)
    assert m["groups"]["section"]["math"]["accuracy"] == pytest.approx(2 / 3)
    assert m["groups"]["section"]["chat"]["accuracy"] == pytest.approx(1 / 3)
    assert m["groups"]["section"]["macro"]["accuracy"] == pytest.approx(0.5)


def _two_order_rows():
    """5 pairs judged in both orders (label = what the judge saw: A in order AB, B in order BA).
    p1 right/right, p2 right/wrong, p3 wrong/wrong, p4 right/right, p5 invalid/right."""
    said = {"p1": ("A", "B"), "p2": ("A", "A"), "p3": ("B", "A"), "p4": ("A", "B"), "p5": (None, "B")}
    rows = []
    for pid, (first, second) in said.items():
        section = "math" if pid in ("p1", "p2") else "chat"
        for swapped, verdict in ((False, first), (True, second)):
            out = "no verdict" if verdict is None else f"<think>x</think><answer>{verdict}</answer>"
            row = {"id": pid, "label": "B" if swapped else "A", "output": out, "section": section}
            if pid in ("p4", "p5"):
                row["order"] = "BA" if swapped else "AB"   # the other spelling of the orientation
            else:
                row["swapped"] = swapped
            rows.append(row)
    return rows


def test_score_keeps_both_orders_apart_overall_and_per_section(tmp_path):
    path = tmp_path / "two_orders.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _two_order_rows()) + "{torn\n")
    proc = run_cli("score", str(path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert (m["n_samples"], m["n_examples"], m["n_order_pairs"]) == (10, 5, 5)
    assert m["accuracy"] == pytest.approx(6 / 10)
    # consistent: p1, p3, p4; JudgeBench pair score > 0: p1 (+2), p4 (+2), p5 (0 + 1)
    assert m["position_consistency"] == pytest.approx(3 / 5) and m["judgebench_pair_accuracy"] == pytest.approx(3 / 5)
    math, chat = m["groups"]["section"]["math"], m["groups"]["section"]["chat"]
    assert (math["n_order_pairs"], math["position_consistency"], math["judgebench_pair_accuracy"]) == (2, 0.5, 0.5)
    assert chat["n_order_pairs"] == 3
    assert chat["position_consistency"] == pytest.approx(2 / 3)
    assert chat["judgebench_pair_accuracy"] == pytest.approx(2 / 3)
    assert m["skipped_rows"] == 1 and m["skipped"][0][0] == "two_orders.jsonl:11"
    report = (tmp_path / "report.md").read_text()
    assert "| math | 4 | 75.00 | 75.00 | 0.00 | 2 | 50.00 | 50.00 |" in report


def test_score_refuses_a_duplicate_row_naming_both_lines(tmp_path):
    rows = _two_order_rows()
    path = tmp_path / "dup.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows + [dict(rows[1], output="<answer>A</answer>")]))
    proc = run_cli("score", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "dup.jsonl:11: duplicate row (id='p1', seed=0, swapped=true)" in proc.stderr
    assert "the same as dup.jsonl:2" in proc.stderr
    rows[0]["order"] = "BA"  # says swapped=false and order=BA
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run_cli("score", str(path))
    assert proc.returncode == 0 and "dup.jsonl:1: 'swapped' (False) and 'order' ('BA') disagree" in proc.stderr


def test_score_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "output": "<answer>A</answer>"}\n')
    proc = run_cli("score", str(bad))
    assert proc.returncode == 2 and "lacks ['label']" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("score", str(tmp_path / "missing.jsonl"))
    assert proc.returncode == 2 and "not found" in proc.stderr


@needs_judgebench
def test_synth_keeps_the_longest_correct_trace(tiny_judge, tmp_path):
    """Teacher generations are pre-seeded in predictions.jsonl (resume path), so no model runs."""
    from nemo_thinkrm.config.model import TokenizerConfig
    from nemo_thinkrm.data.preference import load_preference_data
    from nemo_thinkrm.evaluation.prompts import request_id
    from nemo_thinkrm.genrm import load_template
    from nemo_thinkrm.genrm.prompts import build_prompts
    from nemo_thinkrm.models.tokenizer import chat_renderer, load_tokenizer

    run_dir = tmp_path / "synth"
    run_dir.mkdir()
    records = load_preference_data("judgebench", path=str(JUDGEBENCH), limit=3).records
    render, count = chat_renderer(load_tokenizer(TokenizerConfig()), True)
    prompts = build_prompts(records, load_template("reasoning_binary"), render, count, seed=1234, swap="random")
    rows = []
    for k, p in enumerate(prompts):
        wrong = "B" if p.label == "A" else "A"
        outs = [f"short.</think>\n<answer>{p.label}</answer>", f"long reasoning {'x ' * 20}</think>\n"
                f"<answer>{p.label}</answer>", f"longest but wrong {'y ' * 40}</think>\n<answer>{wrong}</answer>"]
        if k == 2:
            outs = [f"<answer>{wrong}</answer>"] * 3  # no correct trace for the third pair
        for s, text in enumerate(outs):
            rows.append({"request_id": request_id(p.prompt_id, s), "prompt_id": p.prompt_id,
                         "example_id": p.example_id, "seed": s, "swapped": p.swapped, "label": p.label,
                         "mode": "binary", "section": p.section, "tags": p.tags, "output": text,
                         "output_tokens": len(text.split()), "finish_reason": "stop", "error": None})
    preds.append_rows(run_dir / "predictions.jsonl", rows)
    proc = run_cli("synth", "--config-name", "tiny_synth", f"run_dir={run_dir}", f"model.hf_path={tiny_judge}",
                   f"data.path={JUDGEBENCH}", "data.limit=3", "samples_per_pair=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = [json.loads(l) for l in (run_dir / "sft.jsonl").read_text().splitlines()]
    assert len(out) == 2
    for row in out:
        assert row["messages"][0]["role"] == "user" and "[The Start of Response A]" in row["messages"][0]["content"]
        assert row["messages"][1]["content"].startswith("long reasoning")  # longest *correct* one
    summary = json.loads((run_dir / "synth_summary.json").read_text())
    assert summary["pairs_without_correct_trace"] == 1 and summary["correct_generations"] == 4


def test_synth_with_the_scripted_teacher_follows_the_swap(tiny_judge, tmp_path):
    """The quickstart's stand-in teacher: every trace is correct for the order the judge saw."""
    from nemo_thinkrm.data.synthetic import make_arithmetic_pairs, write_preference_jsonl

    data = tmp_path / "pairs.jsonl"
    write_preference_jsonl(make_arithmetic_pairs(24, seed=3), data)
    run_dir = tmp_path / "synth"
    proc = run_cli("synth", "--config-name", "tiny_synth", f"run_dir={run_dir}", "data=generic", f"data.path={data}",
                   "data.limit=null", "template=compact_binary", "generation.backend=scripted", "samples_per_pair=1",
                   f"model.hf_path={tiny_judge}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(l) for l in (run_dir / "sft.jsonl").read_text().splitlines()]
    assert len(rows) == 24
    swapped = 0
    for r in rows:
        assert r["messages"][1]["content"].endswith(f"<answer>{r['label']}</answer>")
        swapped += r["label"] == "B"
    assert 0 < swapped < 24  # the seeded coin put the right response in both positions


def test_synth_proving_rationales_become_judge_rows(tiny_judge, tmp_path):
    """GRAM-R²'s rationale step: the teacher is asked with the proving template (it is shown the label);
    the rows it writes carry the judge template's prompt for the same pair and order, never the label."""
    from nemo_thinkrm.data.synthetic import make_arithmetic_pairs, write_preference_jsonl

    data = tmp_path / "pairs.jsonl"
    write_preference_jsonl(make_arithmetic_pairs(12, seed=4), data)
    common = ("synth", "--config-name", "tiny_synth", "data=generic", f"data.path={data}", "data.limit=null",
              "generation.backend=scripted", "samples_per_pair=1", f"model.hf_path={tiny_judge}")
    proc = run_cli(*common, f"run_dir={tmp_path / 'proving'}", "template=proving_compact_binary",
                   "train_template=compact_binary")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "template: proving_compact_binary" in (tmp_path / "proving" / "config.yaml").read_text()
    rows = [json.loads(l) for l in (tmp_path / "proving" / "sft.jsonl").read_text().splitlines()]
    proc = run_cli(*common, f"run_dir={tmp_path / 'judge'}", "template=compact_binary")
    assert proc.returncode == 0, proc.stderr[-3000:]
    judge_rows = {r["id"]: r for r in map(json.loads, (tmp_path / "judge" / "sft.jsonl").read_text().splitlines())}
    assert len(rows) == 12 and {r["id"] for r in rows} == set(judge_rows)
    for r in rows:
        user = r["messages"][0]["content"]
        assert "correct one" not in user and user == judge_rows[r["id"]]["messages"][0]["content"]
        assert r["messages"][1]["content"].endswith(f"<answer>{r['label']}</answer>")
    proc = run_cli(*common, f"run_dir={tmp_path / 'bad'}", "template=compact_binary",
                   "train_template=proving_compact_binary")
    assert proc.returncode == 2 and "preference-proving template" in proc.stderr
