"""``thinkrm best-of-n``: batched rankings equal the one-item strategies; candidate files in both row
forms with bad rows counted; end to end through the OpenAI client against judges whose answers are
known (a rule judge that is always right, a judge that always says "A"), and resume."""

from __future__ import annotations

import json
import re

import pytest

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.data.candidates import load_candidate_sets
from nemo_thinkrm.genrm.ranking import all_pairs, knockout, rank_many
from nemo_thinkrm.models.tokenizer import tiny_bpe_dir
from tests.helpers import run_cli
from tests.fake_openai import FakeServer, in_thread


def _strength(k, i, j):  # a deterministic, intransitive-enough judge over (item, i, j)
    return 1.0 if (3 * i + 5 * j + k) % 4 < 2 else 0.0


@pytest.mark.parametrize("strategy", ["knockout", "all_pairs"])
def test_rank_many_equals_one_item_at_a_time(strategy):
    sizes = [2, 5, 7, 4]
    batches = []

    def ask(matches):
        batches.append(len(matches))
        return [_strength(k, i, j) for k, i, j in matches]

    many = rank_many(strategy, sizes, ask, seeds=[3] * 4, both_orders=True)
    for k, n in enumerate(sizes):
        compare = lambda i, j, k=k: _strength(k, i, j)  # noqa: E731
        one = knockout(n, compare, seed=3) if strategy == "knockout" else all_pairs(n, compare, both_orders=True)
        assert (many[k].order, many[k].comparisons, many[k].bracket, many[k].wins) == (
            one.order, one.comparisons, one.bracket, one.wins)
    if strategy == "knockout":
        assert batches == [1 + 2 + 3 + 2, 1 + 2 + 1, 1 + 1]  # one batch per round: ceil(log2 7) = 3 rounds
        assert [r.comparisons for r in many] == [n - 1 for n in sizes]
    else:
        assert batches == [sum(n * (n - 1) for n in sizes)]


def test_candidate_files_both_forms_and_bad_rows(tmp_path):
    path = tmp_path / "c.jsonl"
    rows = [{"id": "x", "prompt": "p", "responses": ["a", "b", "c"], "best": 2},
            {"id": "y", "messages": [{"role": "user", "content": "q"}], "chosen": ["r1"], "rejected": ["w1", "w2"]},
            {"id": "z", "prompt": "p", "responses": ["only one"]},
            {"id": "w", "prompt": "p", "responses": ["a", "b"], "best": 5},
            {"id": "v", "prompt": "p", "responses": ["a", "b"]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    sets, skipped = load_candidate_sets(str(path))
    assert [s.id for s in sets] == ["x", "y", "v"] and skipped == 3
    assert sets[0].correct == {2} and sets[1].responses == ["r1", "w1", "w2"] and sets[1].correct == {0}
    assert sets[2].correct == frozenset()
    with pytest.raises(ConfigError, match="unusable"):
        load_candidate_sets(str(path), max_bad_fraction=0.1)


def _rule_judge(prompt: str) -> str:
    """Right on the embedded task: the response whose value equals a + b wins."""
    a, b = map(int, re.findall(r"What is (\d+) \+ (\d+)\?", prompt)[-1])
    values = re.findall(r"\[The Start of Response [AB]\]\n\d+ \+ \d+ = (\d+)\.", prompt)
    return "<answer>A</answer>" if int(values[0]) == a + b else "<answer>B</answer>"


def _best_of_n(tmp_path, judge, *extra):
    tok = str(tiny_bpe_dir(512))
    return run_cli("best-of-n", "--config-name", "tiny_best_of_n", f"run_dir={tmp_path}",
                   "generation.backend=openai", f"generation.endpoints={judge.url}", f"generation.model={tok}",
                   *extra)


@pytest.mark.parametrize("strategy, comparisons", [("knockout", 3), ("all_pairs", 12), ("sort", None)])
def test_a_right_judge_always_picks_the_right_answer(tmp_path, strategy, comparisons):
    server = FakeServer("rule", model_id=str(tiny_bpe_dir(512)))
    server.respond = _rule_judge
    with in_thread(server) as judge:
        proc = _best_of_n(tmp_path, judge, f"strategy={strategy}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((tmp_path / "metrics.json").read_text())
    if comparisons is None:  # a merge sort of 4 asks 4 or 5 comparisons, each in both orders
        comparisons = m["comparisons_per_item"]
        assert 8 <= comparisons <= 10
    assert (m["items"], m["accuracy"], m["chance"], m["comparisons_per_item"]) == (8, 1.0, 0.25, comparisons)
    assert m["judge_requests"] == 8 * comparisons and m["judge_invalid"] == 0
    rows = [json.loads(line) for line in (tmp_path / "best_of_n.jsonl").read_text().splitlines()]
    assert all(r["winner"] == 0 and r["order"][0] == 0 and sorted(r["order"]) == [0, 1, 2, 3] for r in rows)
    if strategy == "all_pairs":
        assert all(r["wins"][0][k] == 1.0 for r in rows for k in (1, 2, 3))
    assert "| 8 | 8 | 100.0 % | 25.0 % |" in (tmp_path / "report.md").read_text()


def test_always_a_judge_picks_by_position_and_resume_asks_nothing(tmp_path):
    """An always-"A" judge crowns the first shown response of its bracket; responses are shown in a
    seeded order, so that is not always the file's first (right) one — and a rerun asks nothing."""
    server = FakeServer("<answer>A</answer>", model_id=str(tiny_bpe_dir(512)))
    with in_thread(server) as judge:
        proc = _best_of_n(tmp_path, judge)
        asked = server.generations
        again = _best_of_n(tmp_path, judge)
        assert server.generations == asked == 8 * 3
    assert proc.returncode == 0 and again.returncode == 0, proc.stderr[-3000:] + again.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "best_of_n.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    for r in rows:  # every match is won by its first response: the bracket's first shown one wins
        assert all(w == i for i, j, w in r["bracket"])
    assert 0 < sum(r["winner"] == 0 for r in rows) < 8
    assert json.loads((tmp_path / "metrics.json").read_text())["items"] == 8


def test_strategy_must_suit_the_judge(tmp_path):
    proc = run_cli("best-of-n", "--config-name", "tiny_best_of_n", f"run_dir={tmp_path}",
                   "generation.backend=reward_model")
    assert proc.returncode == 2 and "a reward model ranks by its scores (strategy=scores)" in proc.stderr
