"""A trained ``thinkrm rm`` checkpoint as the judge of ``thinkrm eval`` and ``thinkrm robustness``
(``generation.backend=reward_model``): the scores in the predictions equal the megatron model's own
scores from the training checkpoint, the verdicts and accuracy follow from them, and master-key
false positives are the pairs where the key outscores the chosen response."""

from __future__ import annotations

import json

import pytest
import torch

from nemo_thinkrm.data.synthetic import make_arithmetic_pairs, write_preference_jsonl
from tests.helpers import run_cli

FIELD_MAP = "+data.field_map={prompt: prompt, response_a: response_a, response_b: response_b, label: label}"


@pytest.fixture(scope="module")
def trained_rm(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("rm") / "run"
    proc = run_cli("rm", "--config-name", "tiny_rm", f"run_dir={run_dir}", "train_iters=40", "eval_interval=0",
                   "data.path=builtin:arithmetic:512")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]


def _megatron_scores(rm_run_dir, conversations):
    """Each (question, response) scored by the megatron model loaded from the training checkpoint."""
    from nemo_thinkrm.checkpoint.convert import open_source
    from nemo_thinkrm.config.parallel import ParallelConfig
    from nemo_thinkrm.models.builder import build_gpt_model
    from nemo_thinkrm.models.tokenizer import encode_prompt_and_response, load_tokenizer
    from nemo_thinkrm.runtime.distributed import init_distributed

    with open_source(rm_run_dir) as src:
        assert src.cfg.head == "reward"
        init_distributed(ParallelConfig(), src.cfg)
        model = build_gpt_model(src.cfg, ParallelConfig(), backend="local").eval()
        src.load_into(model, src.cfg)
        tok = load_tokenizer(src.cfg.tokenizer)
    out = []
    with torch.no_grad():
        for question, response in conversations:
            p, r = encode_prompt_and_response(tok, [{"role": "user", "content": question}], response,
                                              think_prefix=False)
            ids = torch.tensor([p + r])
            out.append(float(model(ids, torch.arange(ids.shape[1]).unsqueeze(0), None)[0, -1, 0]))
    return out


def test_eval_with_the_reward_model_scores_as_megatron_does(trained_rm, megatron_single, tmp_path):
    pairs = make_arithmetic_pairs(24, seed=5)
    data = tmp_path / "pairs.jsonl"
    write_preference_jsonl(pairs, data)
    run_dir = tmp_path / "eval"
    args = ["eval", "--config-name", "tiny_eval", f"run_dir={run_dir}", "data.name=generic", f"data.path={data}",
            FIELD_MAP, "generation.backend=reward_model", f"model.hf_path={trained_rm}", "voting.m=1",
            "generation.batch_size=5", "data.limit=null"]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run_dir / "judge_hf" / "config.json").read_text())["architectures"] == [
        "LlamaForSequenceClassification"]
    rows = _rows(run_dir)
    assert len(rows) == 24 and {r["swapped"] for r in rows} == {False}
    by_id = {r["example_id"]: r for r in rows}
    convs = [(p.question, text) for p in pairs for text in (p.response_a, p.response_b)]
    ref = _megatron_scores(trained_rm, convs)
    right = 0
    for k, p in enumerate(pairs):
        row = by_id[f"generic:{k}"]  # the file has no id column: the row index
        assert row["scores"]["A"] == pytest.approx(ref[2 * k], abs=1e-4)
        assert row["scores"]["B"] == pytest.approx(ref[2 * k + 1], abs=1e-4)
        winner = "A" if ref[2 * k] > ref[2 * k + 1] else "B"
        assert row["verdict"]["label"] == winner
        right += winner == p.label
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(right / 24) and metrics["judge"] == "reward_model"
    assert "Reward model: both responses scored" in (run_dir / "report.md").read_text()

    # resume: a second run scores nothing new and reports the same
    again = run_cli(*args)
    assert again.returncode == 0 and len(_rows(run_dir)) == 24
    assert json.loads((run_dir / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]


def test_robustness_of_the_reward_model(trained_rm, tmp_path):
    data = tmp_path / "pairs.jsonl"
    write_preference_jsonl(make_arithmetic_pairs(4, seed=2), data)
    run_dir = tmp_path / "rob"
    proc = run_cli("robustness", "--config-name", "tiny_robustness", f"run_dir={run_dir}", "data.name=generic",
                   f"data.path={data}", FIELD_MAP, "generation.backend=reward_model", f"model.hf_path={trained_rm}",
                   "keys=[colon,verdict_only]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _rows(run_dir)
    assert len(rows) == 2 * 2 * 4  # per key, both positions, every pair
    fpr = json.loads((run_dir / "metrics.json").read_text())["master_key_fpr"]
    for key in ("colon", "verdict_only"):
        for pos, other in (("A", "B"), ("B", "A")):
            # the key is the response the label does not name
            mine = [r for r in rows if r["tags"]["master_key"] == key and r["label"] == other]
            fooled = sum(r["scores"][pos] > r["scores"][other] for r in mine)
            assert fpr[key][pos] == pytest.approx(fooled / len(mine))
    assert fpr["overall"]["n"] == 16


def test_equal_scores_count_half_from_the_saved_rows():
    """Ties are read from the scores a prediction row keeps (so ``thinkrm score`` agrees): 0.5, not invalid.
    Rows: A wins (label A, right), a tie, B wins (label A, wrong), a failed pair → (1 + .5 + 0 + 0) / 4."""
    from nemo_thinkrm.evaluation.metrics import compute_metrics
    from nemo_thinkrm.evaluation.reward_eval import pair_verdict

    def row(i, a, b, error=None):
        return {"request_id": f"r{i}", "example_id": f"e{i}", "label": "A", "mode": "binary", "seed": 0,
                "output": "" if error else pair_verdict(a, b), "scores": {"A": a, "B": b}, "error": error}

    m = compute_metrics([row(0, 2.0, 1.0), row(1, 0.5, 0.5), row(2, 1.0, 3.0), row(3, 0.0, 0.0, "over-length")])
    assert (m["accuracy"], m["flexible_accuracy"]) == (0.375, 0.5)
    assert (m["invalid_rate"], m["ties"], m["failed_requests"]) == (0.25, 1, 1)


def test_pairwise_advantage_of_reward_scores_is_grpo():
    """d_ij = r_i − r_j in Think-RM's pairwise advantage gives (r − mean) / unbiased std per group."""
    from nemo_thinkrm.algorithms.advantages import pairwise_advantages
    from nemo_thinkrm.trainers.pairwise_rlhf import reward_matrix, score_preferences

    r = torch.tensor([[1.0, 2.0, 4.0, -1.0], [0.5, 0.5, 3.0, 2.0]])
    adv = pairwise_advantages(score_preferences(r), eps=0.0)
    grpo = (r - r.mean(-1, keepdim=True)) / r.std(-1, keepdim=True)
    assert torch.allclose(adv, grpo, atol=1e-6), (adv, grpo)
    filled = reward_matrix([1.0, None, 3.0, 2.0, None, None, None, None], 4)
    assert filled.tolist() == [[1.0, 2.0, 3.0, 2.0], [0.0] * 4]  # a group's mean; an unscored group is a tie


def test_pairwise_rlhf_with_the_reward_model_as_judge(trained_rm, tiny_hf_dirs, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"What is {i} + {i + 2}?"}) + "\n" for i in range(6)))
    run_dir = tmp_path / "rlhf"
    proc = run_cli("pairwise-rlhf", "--config-name", "tiny_pairwise_rlhf", f"run_dir={run_dir}",
                   f"model.hf_path={tiny_hf_dirs['llama']}", f"prompt_path={prompts}", "judge.kind=reward_model",
                   f"judge.model={trained_rm}", "train_iters=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r.get("kind") == "train"]
    assert len(train) == 2
    for r in train:
        assert r["judge_pairs"] == 0 and r["failed_pairs"] == 0 and r["reward_std"] > 0
        assert r["judge_tokens"] > 0 and abs(r["reward_mean"]) < 1e3
    assert (run_dir / "judge_hf" / "config.json").is_file()


def test_best_of_n_with_the_reward_model(trained_rm, megatron_single, tmp_path):
    from nemo_thinkrm.data.synthetic import make_candidate_sets

    proc = run_cli("best-of-n", "--config-name", "tiny_best_of_n", f"run_dir={tmp_path}",
                   "generation.backend=reward_model", "strategy=scores", f"model.hf_path={trained_rm}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "best_of_n.jsonl").read_text().splitlines()]
    items = make_candidate_sets(8, 4)
    ref = _megatron_scores(trained_rm, [(it["prompt"], r) for it in items for r in it["responses"]])
    for k, (it, row) in enumerate(zip(items, rows)):
        mine = ref[4 * k:4 * k + 4]
        assert row["scores"] == pytest.approx(mine, abs=1e-4) and row["comparisons"] == 0
        assert row["order"] == sorted(range(4), key=lambda i: -mine[i])
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["accuracy"] == pytest.approx(sum(r["winner"] == 0 for r in rows) / 8) and m["judge_requests"] == 32


def test_rewardbench2_with_the_reward_model_scores_ties(trained_rm, megatron_single, tmp_path):
    """Every subset from the reward model's own scores, Ties by its formula, as upstream rolls them up."""
    from pathlib import Path

    from nemo_thinkrm.data.benchmarks.rewardbench2 import RB2Item, rollup

    fixture = Path(__file__).parents[1] / "fixtures" / "preference" / "rewardbench2.jsonl"
    run_dir = tmp_path / "rb2"
    proc = run_cli("eval", "--config-name", "tiny_eval", f"run_dir={run_dir}", "data=rewardbench2",
                   f"data.path={fixture}", "generation.backend=reward_model", f"model.hf_path={trained_rm}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((run_dir / "metrics.json").read_text())
    items = [json.loads(line) for line in fixture.read_text().splitlines()]
    items = [it for it in items if it["subset"] != "Chat" and it["id"] != "3" and "" not in it["rejected"]]
    ref = []
    for it in items:
        responses = it["chosen"] + it["rejected"]
        scores = _megatron_scores(trained_rm, [(it["prompt"], r) for r in responses])
        ref.append(RB2Item(it["id"], it["subset"], scores, len(it["chosen"])))
    expected = rollup(ref)
    assert set(m["rewardbench2"]) == {"Factuality", "Math", "Ties", "Overall"}
    for k, v in expected.items():
        assert m["rewardbench2"][k] == pytest.approx(v, abs=1e-6), k
    assert m["n_examples"] == 6  # the Ties comparisons count in no pairwise accuracy
