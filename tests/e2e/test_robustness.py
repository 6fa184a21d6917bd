"""``thinkrm robustness`` end to end through the OpenAI client against a judge that always answers
"A": every master key shown in position A fools it, none in B — so the per-key, per-position and
overall false-positive rates are known exactly; a mistyped key is one clear error."""

from __future__ import annotations

import json

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
