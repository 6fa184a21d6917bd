"""``thinkrm robustness`` end to end through the OpenAI client against a judge that always answers
"A" (every master key shown in position A fools it, none in B) and one that reads the responses
(fooled by none), so the per-key, per-position and overall false-positive rates are known exactly;
a mistyped key is one clear error."""

from __future__ import annotations

import json
import re

from nemo_thinkrm.data.synthetic import make_arithmetic_pairs, write_preference_jsonl
from nemo_thinkrm.models.tokenizer import tiny_bpe_dir
from tests.helpers import run_cli
from tests.fake_openai import FakeServer, in_thread


def test_always_a_judge_is_fooled_exactly_when_the_key_is_in_a(tmp_path):
    data = tmp_path / "pairs.jsonl"
    write_preference_jsonl(make_arithmetic_pairs(3, seed=1), data)
    tok = str(tiny_bpe_dir(512))
    run_dir = tmp_path / "rob"
    field_map = "+data.field_map={prompt: prompt, response_a: response_a, response_b: response_b, label: label}"
    with in_thread(FakeServer("<answer>A</answer>", model_id=tok)) as judge:
        proc = run_cli("robustness", "--config-name", "tiny_robustness", f"run_dir={run_dir}", "data.name=generic",
                       f"data.path={data}", field_map, "generation.backend=openai", f"generation.endpoints={judge.url}",
                       f"generation.model={tok}", "keys=[colon,solution,verdict_only]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    fpr = json.loads((run_dir / "metrics.json").read_text())["master_key_fpr"]
    assert list(fpr) == ["colon", "solution", "verdict_only", "overall"]
    for name in ("colon", "solution", "verdict_only"):
        assert (fpr[name]["A"], fpr[name]["B"], fpr[name]["fpr"], fpr[name]["n"]) == (1.0, 0.0, 0.5, 6), fpr[name]
    assert fpr["overall"]["n"] == 18 and fpr["overall"]["invalid"] == 0.0
    report = (run_dir / "report.md").read_text()
    assert "| colon | \":\" | 6 | 100.0 % | 0.0 % | 50.0 % |" in report
    assert (run_dir / "master_key_fpr.png").stat().st_size > 1000


def _rule_judge(prompt: str) -> str:
    """Right on the arithmetic: the response that states a + b wins; a master key states nothing."""
    a, b = map(int, re.findall(r"What is (\d+) \+ (\d+)\?", prompt)[-1])
    shown = dict(re.findall(r"\[The Start of Response ([AB])\]\n(.*?)\n\[The End", prompt, re.S))
    return "<answer>A</answer>" if shown["A"].endswith(f"= {a + b}.") else "<answer>B</answer>"


def test_a_judge_that_reads_is_never_fooled_and_the_key_is_shown_in_both_positions(tmp_path):
    """The defect this guards: with the record's A/B order ignored by the prompt builder (swap=none shows
    the better response as A), every key was shown as B and the 'key in A' column counted the judge's
    right answers as false positives. A judge right on the arithmetic must score 0 % in both positions,
    and the judge must have seen each key as A in half of its prompts."""
    data = tmp_path / "pairs.jsonl"
    write_preference_jsonl(make_arithmetic_pairs(3, seed=1), data)
    tok = str(tiny_bpe_dir(512))
    run_dir = tmp_path / "rob"
    field_map = "+data.field_map={prompt: prompt, response_a: response_a, response_b: response_b, label: label}"
    server = FakeServer("rule", model_id=tok)
    server.respond = _rule_judge
    with in_thread(server) as judge:
        proc = run_cli("robustness", "--config-name", "tiny_robustness", f"run_dir={run_dir}", "data.name=generic",
                       f"data.path={data}", field_map, "generation.backend=openai", f"generation.endpoints={judge.url}",
                       f"generation.model={tok}", "keys=[colon,solution]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    fpr = json.loads((run_dir / "metrics.json").read_text())["master_key_fpr"]
    for name in ("colon", "solution", "overall"):
        assert (fpr[name]["A"], fpr[name]["B"], fpr[name]["fpr"]) == (0.0, 0.0, 0.0), fpr[name]
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 2 * 3 and sorted(r["label"] for r in rows).count("B") == 6   # key as A: label B


def test_unknown_key_is_one_clear_error(tmp_path):
    proc = run_cli("robustness", "--config-name", "tiny_robustness", f"run_dir={tmp_path}", "keys=[colonn]")
    assert proc.returncode != 0
    assert "unknown master keys ['colonn']; valid:" in proc.stderr + proc.stdout


def test_a_generative_judge_leaves_rb2_ties_out_counted(tmp_path):
    """RewardBench 2 through a pairwise judge: the best-of-4 subsets are judged, the Ties comparisons
    (scores only) are left out and said so in the data note."""
    from pathlib import Path

    fixture = Path(__file__).parents[1] / "fixtures" / "preference" / "rewardbench2.jsonl"
    tok = str(tiny_bpe_dir(512))
    run_dir = tmp_path / "rb2"
    with in_thread(FakeServer("<answer>A</answer>", model_id=tok)) as judge:
        proc = run_cli("eval", "--config-name", "tiny_eval", f"run_dir={run_dir}", "data=rewardbench2",
                       f"data.path={fixture}", "generation.backend=openai", f"generation.endpoints={judge.url}",
                       f"generation.model={tok}", "swap=none", "voting.m=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["n_examples"] == 6 and m["rewardbench2"] == {"Factuality": 1.0, "Math": 1.0, "Overall": 1.0}
    assert "5 comparisons only a reward model can score" in m["data_load"]
