"""Preference records, the loader's books and every dataset adapter, on hand-built fixtures.

The fixtures in tests/fixtures/preference/ use each dataset's real schema and
contain bad rows on purpose; the expected records, ids, sections and skip
reasons below are read off those files by hand. JudgeBench runs on the real
shared files.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import pytest

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.registry import DATASETS
from nemo_thinkrm.data.adapters import get_adapter
from nemo_thinkrm.data.benchmarks.helpsteer2 import helpsteer2_messages
from nemo_thinkrm.data.benchmarks.judgebench import judgebench_category
from nemo_thinkrm.data.benchmarks.rewardbench import (
    REWARDBENCH_EXAMPLE_COUNTS,
    REWARDBENCH_SECTIONS,
    REWARDBENCH_SUBSETS,
)
from nemo_thinkrm.data.benchmarks.rm_bench import rm_bench_difficulty
from nemo_thinkrm.data.preference import LoadResult, count_over_length, load_preference_data
from nemo_thinkrm.data.records import BadRow, PreferenceRecord
from nemo_thinkrm.data.rows import resolve_data_files
from tests.helpers import JUDGEBENCH, needs_judgebench

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "preference"
GENERIC_AB_MAP = {"id": "uid", "prompt": "question", "response_a": "answer_1", "response_b": "answer_2",
                  "label": "winner", "section": "category"}
GENERIC_CR_MAP = {"context": "conversation", "chosen": "good", "rejected": "bad", "strength": "margin"}


def fixture(name: str) -> str:
    return str(FIXTURES / name)


def raw_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def record(**overrides) -> PreferenceRecord:
    fields = dict(id="t:0", context=(user("Q?"),), response_a="yes", response_b="no", label="A")
    fields.update(overrides)
    return PreferenceRecord(**fields)


# --------------------------------------------------------------------------- record


def test_record_properties_and_json_round_trip():
    rec = record(label="B", strength=2, section="math", tags={"domain": "stem"}, source="t",
                 context=[user("Hi"), {"role": "assistant", "content": "Hello"}, user("Q?")])
    assert isinstance(rec.context, tuple) and len(rec.context) == 3
    assert (rec.chosen, rec.rejected, rec.strength_magnitude) == ("no", "yes", 2)
    assert record().strength_magnitude is None
    data = json.loads(json.dumps(rec.to_json()))
    assert data["context"][0] == {"role": "user", "content": "Hi"}
    assert PreferenceRecord.from_json(data) == rec


@pytest.mark.parametrize("overrides, message", [
    (dict(label="C"), "label must be 'A' or 'B'"),
    (dict(label="a"), "label must be 'A' or 'B'"),
    (dict(strength=0), "not 0"),
    (dict(strength=4), "-3..3"),
    (dict(strength=-4), "-3..3"),
    (dict(strength=True), "must be an int"),
    (dict(label="A", strength=2), "disagrees with label"),
    (dict(label="B", strength=-1), "disagrees with label"),
    (dict(response_a=""), "response_a is empty"),
    (dict(response_b="  \n"), "response_b is empty"),
    (dict(response_b=None), "response_b must be a string"),
    (dict(context=()), "context is empty"),
    (dict(context=(user("Q"), {"role": "assistant", "content": "A"})), "must end with a user message"),
    (dict(context=({"role": "robot", "content": "Q"},)), "has role 'robot'"),
    (dict(context="Q?"), "sequence of messages"),
    (dict(id=""), "id is empty"),
    (dict(tags={"domain": 3}), "tags must map strings"),
])
def test_record_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        record(**overrides)


def test_record_from_json_rejects_unknown_and_missing_keys():
    data = record().to_json()
    with pytest.raises(ValueError, match="unknown preference record keys"):
        PreferenceRecord.from_json({**data, "extra": 1})
    del data["label"]
    with pytest.raises(ValueError, match=r"lacks keys \['label'\]"):
        PreferenceRecord.from_json(data)


def test_count_over_length_reports_ids_without_cutting():
    records = [record(id="t:short", context=(user("ab"),)), record(id="t:long", context=(user("abcdefgh"),))]
    prompt_chars = lambda r: sum(len(m["content"]) for m in r.context)  # noqa: E731
    assert count_over_length(records, prompt_chars, budget=5) == ["t:long"]
    assert count_over_length(records, prompt_chars, budget=8) == []
    assert records[1].context[0]["content"] == "abcdefgh"
    with pytest.raises(ConfigError, match="positive int"):
        count_over_length(records, prompt_chars, budget=0)


# --------------------------------------------------------------------------- registry / sources


def test_registry_names_and_unknown_adapter():
    assert set(DATASETS) == {"helpsteer2_preference", "helpsteer3", "rewardbench", "rewardbench2", "rm_bench",
                             "judgebench", "skywork_preference", "generic"}
    assert get_adapter("rm_bench").name == "rm_bench"
    with pytest.raises(ConfigError, match=r"unknown preference dataset 'nope'.*'rewardbench'"):
        get_adapter("nope")


def test_hub_id_fails_offline_with_a_hint_about_path(monkeypatch):
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match=r"allenai/reward-bench.*data\.path="):
        load_preference_data("rewardbench")


def test_generic_without_path_or_hub_id_asks_for_path():
    with pytest.raises(ConfigError, match=r"no default source; pass data\.path="):
        load_preference_data("generic", field_map=GENERIC_AB_MAP)


def test_missing_path_and_empty_directory(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_preference_data("rewardbench", path=str(tmp_path / "nothing.jsonl"))
    (tmp_path / "README.md").write_text("not data")
    with pytest.raises(ConfigError, match="no .jsonl/.json/.parquet files"):
        load_preference_data("rewardbench", path=str(tmp_path))


def test_a_torn_line_costs_one_row_and_a_mostly_broken_file_is_an_error(tmp_path):
    path = tmp_path / "broken.jsonl"
    good = (FIXTURES / "rm_bench.jsonl").read_text()
    path.write_text(good + "not json\n")
    result = load_preference_data("rm_bench", path=str(path), max_bad_fraction=0.9)
    assert ("rm_bench:broken.jsonl:6", "not valid JSON (Expecting value at column 1)") in result.skipped
    assert result.n_rows == 6 and len(result.records) == 27
    path.write_text(good.splitlines()[0] + "\n" + "{torn\n" * 3)
    with pytest.raises(ConfigError, match=r"3 of 4 rows of .*broken\.jsonl are unusable.*broken\.jsonl:2: not valid"):
        load_preference_data("rm_bench", path=str(path))


def test_json_array_file(tmp_path):
    path = tmp_path / "rm.json"
    path.write_text(json.dumps(raw_rows("rm_bench.jsonl")))
    assert len(load_preference_data("rm_bench", path=str(path)).records) == 27


def test_directory_and_glob_inputs_read_only_data_files(tmp_path):
    shutil.copy(FIXTURES / "rm_bench.jsonl", tmp_path / "b.jsonl")
    (tmp_path / "README.md").write_text("ignored")
    assert resolve_data_files(str(tmp_path)) == ("json", [str(tmp_path / "b.jsonl")])
    by_dir = load_preference_data("rm_bench", path=str(tmp_path))
    by_glob = load_preference_data("rm_bench", path=str(tmp_path / "*.jsonl"))
    assert len(by_dir.records) == len(by_glob.records) == 27


def test_wrong_adapter_names_the_missing_columns():
    with pytest.raises(ConfigError, match=r"lacks the column\(s\) \['prompt', 'chosen', 'rejected', 'subset', 'id'\]"):
        load_preference_data("rewardbench", path=fixture("helpsteer3.jsonl"))


def test_most_rows_bad_is_a_config_error(tmp_path):
    good, *_ = raw_rows("rewardbench.jsonl")
    bad = [dict(good, id=7, chosen=""), dict(good, id=8, subset="bogus")]
    path = tmp_path / "mostly_bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [good, *bad]))
    with pytest.raises(ConfigError) as err:
        load_preference_data("rewardbench", path=str(path))
    message = str(err.value)
    assert "mostly_bad.jsonl" in message and "2 of 3 rows" in message
    assert "rewardbench:7 (mostly_bad.jsonl:2): field 'chosen' is empty" in message
    assert "unknown RewardBench subset 'bogus'" in message
    # the fixture itself is 2/8 bad: fine at the default, refused at a stricter threshold
    assert len(load_preference_data("rewardbench", path=fixture("rewardbench.jsonl")).records) == 6
    with pytest.raises(ConfigError, match="2 of 8 rows"):
        load_preference_data("rewardbench", path=fixture("rewardbench.jsonl"), max_bad_fraction=0.2)


def test_bad_load_arguments():
    with pytest.raises(ConfigError, match="max_bad_fraction"):
        load_preference_data("rewardbench", path=fixture("rewardbench.jsonl"), max_bad_fraction=1.5)
    with pytest.raises(ConfigError, match="limit"):
        load_preference_data("rewardbench", path=fixture("rewardbench.jsonl"), limit=0)


def test_skips_are_logged_and_summarised(caplog):
    with caplog.at_level(logging.WARNING, logger="nemo_thinkrm.data.preference"):
        result = load_preference_data("rewardbench", path=fixture("rewardbench.jsonl"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 2 of 8 rows" in warnings[0]
    assert isinstance(result, LoadResult) and result.over_length == []
    summary = result.summary()
    assert "\n" not in summary
    assert summary.startswith("rewardbench: 6 records from 8 rows of ")
    assert "skipped 2 bad" in summary and "filtered 0" in summary and "0 over length" in summary


def test_limit_counts_rows_that_produced_records():
    rm = load_preference_data("rm_bench", path=fixture("rm_bench.jsonl"), limit=1)
    assert len(rm.records) == 9 and rm.n_rows == 1
    hs2 = load_preference_data("helpsteer2_preference", path=fixture("helpsteer2_preference.jsonl"), limit=2)
    assert [r.id for r in hs2.records] == ["helpsteer2_preference:0", "helpsteer2_preference:1"]


# --------------------------------------------------------------------------- HelpSteer2 / HelpSteer3


def test_helpsteer2_preference_eval_split():
    result = load_preference_data("helpsteer2_preference", path=fixture("helpsteer2_preference.jsonl"))
    assert result.n_rows == 8
    got = [(r.id, r.label, r.strength, r.section) for r in result.records]
    assert got == [("helpsteer2_preference:0", "A", -2, "all"), ("helpsteer2_preference:1", "B", 3, "all"),
                   ("helpsteer2_preference:7", "B", 1, "all")]
    first = result.records[0]
    assert first.response_a == "The capital of France is Paris." and first.chosen == first.response_a
    assert first.context == ({"role": "user", "content": "What is the capital of France?"},)
    assert result.records[1].chosen == "11 is a larger prime number."
    assert result.records[1].context == (
        {"role": "user", "content": "Name a prime number."},
        {"role": "assistant", "content": "7 is a prime number."},
        {"role": "user", "content": "Name a larger one."})
    assert result.filtered == [("helpsteer2_preference:2", "tie (preference_strength 0)"),
                               ("helpsteer2_preference:3", "split 'train', not 'val'")]
    assert result.skipped == [
        ("helpsteer2_preference:4", "field 'response_2' is empty"),
        ("helpsteer2_preference:5", "field 'preference_strength' must be an integer, got 'much better'"),
        ("helpsteer2_preference:6", "field 'prompt' missing")]


def test_helpsteer2_split_selection():
    path = fixture("helpsteer2_preference.jsonl")
    every = load_preference_data("helpsteer2_preference", path=path, split="all")
    assert [r.id.split(":")[1] for r in every.records] == ["0", "1", "3", "7"]
    assert every.filtered == [("helpsteer2_preference:2", "tie (preference_strength 0)")]
    train = load_preference_data("helpsteer2_preference", path=path, split="train")
    assert [(r.id, r.strength) for r in train.records] == [("helpsteer2_preference:3", -1)]
    assert train.skipped == [] and len(train.filtered) == 7


def test_helpsteer2_prompt_turn_markers():
    assert helpsteer2_messages("plain prompt") == [user("plain prompt")]
    assert helpsteer2_messages("a\n<extra_id_1>Assistant\nb\n<extra_id_1>User\nc\n") == [
        user("a"), {"role": "assistant", "content": "b"}, user("c")]
    with pytest.raises(BadRow, match="empty Assistant turn"):
        helpsteer2_messages("a\n<extra_id_1>Assistant\n\n<extra_id_1>User\nc")


def test_helpsteer3_domains_and_strengths():
    result = load_preference_data("helpsteer3", path=fixture("helpsteer3.jsonl"))
    got = [(r.id, r.label, r.strength, r.section, r.tags["language"]) for r in result.records]
    assert got == [("helpsteer3:0", "A", -3, "general", "english"), ("helpsteer3:1", "B", 2, "stem", "english"),
                   ("helpsteer3:2", "B", 1, "code", "python"), ("helpsteer3:3", "A", -1, "multilingual", "chinese"),
                   ("helpsteer3:7", "A", -2, "multilingual", "german")]
    assert Counter(r.section for r in result.records) == {"general": 1, "stem": 1, "code": 1, "multilingual": 2}
    assert all(r.tags["domain"] == r.section for r in result.records)
    assert len(result.records[1].context) == 3 and result.records[1].chosen == "The derivative of x^3 is 3x^2."
    assert result.filtered == [("helpsteer3:4", "tie (overall_preference 0)")]
    assert result.skipped == [("helpsteer3:5", "context must end with a user message, ends with 'assistant'"),
                              ("helpsteer3:6", "field 'response1' missing")]


# --------------------------------------------------------------------------- RewardBench


def test_rewardbench_section_mapping_is_the_leaderboard_one():
    assert REWARDBENCH_SUBSETS["Chat"] == ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard",
                                           "mt-bench-easy", "mt-bench-med")
    assert REWARDBENCH_SUBSETS["Chat Hard"] == ("mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor",
                                                "llmbar-adver-GPTInst", "llmbar-adver-GPTOut", "llmbar-adver-manual")
    assert REWARDBENCH_SUBSETS["Safety"] == ("refusals-dangerous", "refusals-offensive", "xstest-should-refuse",
                                             "xstest-should-respond", "donotanswer")
    assert REWARDBENCH_SUBSETS["Reasoning"] == ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js",
                                                "hep-python", "hep-rust")
    assert len(REWARDBENCH_SECTIONS) == 23 and set(REWARDBENCH_EXAMPLE_COUNTS) == set(REWARDBENCH_SECTIONS)
    assert REWARDBENCH_EXAMPLE_COUNTS["math-prm"] == 6 * REWARDBENCH_EXAMPLE_COUNTS["hep-go"] == 984


def test_rewardbench_adapter():
    result = load_preference_data("rewardbench", path=fixture("rewardbench.jsonl"))
    got = [(r.id, r.section, r.tags["subset"], r.label) for r in result.records]
    assert got == [("rewardbench:30", "Chat", "alpacaeval-easy", "A"),
                   ("rewardbench:1002", "Chat Hard", "mt-bench-hard", "A"),
                   ("rewardbench:2001", "Safety", "xstest-should-respond", "A"),
                   ("rewardbench:3001", "Reasoning", "math-prm", "A"),
                   ("rewardbench:3500", "Reasoning", "hep-python", "A"),
                   ("rewardbench:4002", "Chat Hard", "llmbar-adver-GPTOut", "A")]
    assert result.records[3].chosen == "12 * 12 = 144." and result.records[3].rejected == "12 * 12 = 124."
    assert result.records[0].context == ({"role": "user", "content": "How do I boil an egg?"},)
    assert result.skipped == [("rewardbench:4000", "unknown RewardBench subset 'bogus-subset'"),
                              ("rewardbench:4001", "field 'chosen' is empty")]


def test_rm_bench_difficulty_cells():
    cells = {(i, j): rm_bench_difficulty(i, j) for i in range(3) for j in range(3)}
    assert {c for c, d in cells.items() if d == "hard"} == {(0, 1), (0, 2), (1, 2)}
    assert {c for c, d in cells.items() if d == "normal"} == {(0, 0), (1, 1), (2, 2)}
    assert {c for c, d in cells.items() if d == "easy"} == {(1, 0), (2, 0), (2, 1)}
    with pytest.raises(ConfigError):
        rm_bench_difficulty(3, 0)


def test_rm_bench_nine_pairs_per_item():
    result = load_preference_data("rm_bench", path=fixture("rm_bench.jsonl"))
    raw = {row["id"]: row for row in raw_rows("rm_bench.jsonl")}
    assert len(result.records) == 27
    by_item: dict[str, list[PreferenceRecord]] = {}
    for rec in result.records:
        by_item.setdefault(rec.id.rsplit(":", 1)[0], []).append(rec)
    assert sorted(by_item) == ["rm_bench:1", "rm_bench:2", "rm_bench:5"]
    for item, records in by_item.items():
        row = raw[int(item.split(":")[1])]
        assert [r.id for r in records] == [f"{item}:c{i}r{j}" for i in range(3) for j in range(3)]
        assert Counter(r.tags["difficulty"] for r in records) == {"easy": 3, "normal": 3, "hard": 3}
        for rec in records:
            i, j = int(rec.id[-3]), int(rec.id[-1])
            assert (rec.response_a, rec.response_b, rec.label) == (row["chosen"][i], row["rejected"][j], "A")
            assert rec.tags["difficulty"] == ("normal" if i == j else "easy" if i > j else "hard")
    hard = [r.id for r in by_item["rm_bench:1"] if r.tags["difficulty"] == "hard"]
    assert hard == ["rm_bench:1:c0r1", "rm_bench:1:c0r2", "rm_bench:1:c1r2"]
    assert {(r.section, r.tags["domain"]) for r in result.records} == {
        ("chat", "chat"), ("safety", "safety-refuse"), ("math", "math")}
    assert result.skipped == [("rm_bench:3", "field 'chosen' must be a list of 3 responses"),
                              ("rm_bench:4", "unknown RM-Bench domain 'poetry'; known: ['chat', 'code', 'math', "
                                             "'safety-refuse', 'safety-response']")]


# --------------------------------------------------------------------------- JudgeBench


def test_judgebench_category_mapping():
    assert judgebench_category("mmlu-pro-law") == "Knowledge"
    assert judgebench_category("mmlu-pro-computer science") == "Knowledge"
    assert judgebench_category("livebench-reasoning") == "Reasoning"
    assert judgebench_category("livebench-math") == "Math"
    assert judgebench_category("livecodebench") == "Coding"
    assert judgebench_category("gsm8k") is None


def test_judgebench_bad_rows(tmp_path):
    row = {"pair_id": "p1", "original_id": None, "source": "livebench-math", "question": "1+1?",
           "response_model": "m", "response_A": "2", "response_B": "3", "label": "A>B"}
    rows = [row, dict(row, pair_id="p2", label="B>A"), dict(row, pair_id="p3", label="A=B"),
            dict(row, pair_id="p4", source="gsm8k"), dict(row, pair_id="p1"),
            dict(row, pair_id="p5", source="livecodebench")]
    path = tmp_path / "jb.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = load_preference_data("judgebench", path=str(path))
    assert [(r.id, r.label, r.section) for r in result.records] == [
        ("judgebench:p1", "A", "Math"), ("judgebench:p2", "B", "Math"), ("judgebench:p5", "A", "Coding")]
    assert result.skipped == [("judgebench:p3", "label must be 'A>B' or 'B>A', got 'A=B'"),
                              ("judgebench:p4", "unknown JudgeBench source 'gsm8k'"),
                              ("judgebench:p1", "duplicate id 'judgebench:p1' (first seen in jb.jsonl:1)")]


@needs_judgebench
def test_judgebench_real_files():
    raw = [json.loads(line) for path in sorted(JUDGEBENCH.glob("*.jsonl"))
           for line in path.read_text().splitlines() if line.strip()]
    result = load_preference_data("judgebench", path=str(JUDGEBENCH))
    assert len(raw) == 620 and len(result.records) == 620 and result.skipped == []
    expected = Counter("Knowledge" if r["source"].startswith("mmlu-pro-") else
                       {"livebench-reasoning": "Reasoning", "livebench-math": "Math",
                        "livecodebench": "Coding"}[r["source"]] for r in raw)
    sections = Counter(r.section for r in result.records)
    assert sections == expected and set(sections) == {"Knowledge", "Reasoning", "Math", "Coding"}
    by_id = {r.id: r for r in result.records}
    for row in raw:
        rec = by_id[f"judgebench:{row['pair_id']}"]
        assert rec.label == {"A>B": "A", "B>A": "B"}[row["label"]]
        assert (rec.response_a, rec.response_b) == (row["response_A"], row["response_B"])
        assert rec.tags == {"source": row["source"], "response_model": row["response_model"]}
        assert rec.context == ({"role": "user", "content": row["question"]},)


# --------------------------------------------------------------------------- Skywork


def test_skywork_preference():
    result = load_preference_data("skywork_preference", path=fixture("skywork_preference.jsonl"), split="train")
    assert [(r.id, r.label, r.response_a, r.response_b) for r in result.records] == [
        ("skywork_preference:0", "A", "100 °C at sea level.", "50 °C."),
        ("skywork_preference:1", "A", "Honey never spoils.", "The sun is cold."),
        ("skywork_preference:4", "A", "Mars.", "The Moon.")]
    assert [len(r.context) for r in result.records] == [1, 3, 1]
    assert result.records[1].context[-1] == user("Tell me a fact.")
    assert [r.tags for r in result.records] == [{"source": "magpie_ultra"}, {"source": "offsetbias"}, {}]
    assert result.skipped == [
        ("skywork_preference:2", "chosen and rejected do not share the same earlier turns"),
        ("skywork_preference:3", "rejected must end with an assistant turn after at least one user turn")]


# --------------------------------------------------------------------------- generic / parquet


def test_generic_label_forms():
    result = load_preference_data("generic", path=fixture("generic_ab.jsonl"), field_map=GENERIC_AB_MAP)
    assert [(r.id, r.label, r.section) for r in result.records] == [
        ("generic:u1", "A", "math"), ("generic:u2", "B", "chat"), ("generic:u3", "B", "chat"),
        ("generic:u4", "A", "math")]
    assert result.records[1].chosen == "Hello, nice to meet you!"
    assert result.skipped == [("generic:u5", "label must be A/B, A>B/B>A or 0/1, got 'C'"),
                              ("generic:u6", "field 'answer_2' missing")]


def test_generic_chosen_rejected_with_context():
    result = load_preference_data("generic", path=fixture("generic_chosen_rejected.jsonl"),
                                  field_map=GENERIC_CR_MAP)
    assert [(r.id, r.label, r.strength, r.chosen) for r in result.records] == [
        ("generic:0", "A", -2, "Blue on a clear day."), ("generic:1", "A", None, "2.")]
    assert len(result.records[1].context) == 3
    assert result.skipped == [("generic:2", "with chosen/rejected, 'margin' must be 1..3, got 5")]


def test_generic_field_map_errors():
    path = fixture("generic_ab.jsonl")
    with pytest.raises(ConfigError, match=r"field_map\.label='verdict': no such column .*\['answer_1', 'answer_2', "
                                          r"'category', 'question', 'uid', 'winner'\]"):
        load_preference_data("generic", path=path, field_map=dict(GENERIC_AB_MAP, label="verdict"))
    with pytest.raises(ConfigError, match="needs data.field_map"):
        load_preference_data("generic", path=path)
    with pytest.raises(ConfigError, match=r"unknown data.field_map keys \['question'\]"):
        load_preference_data("generic", path=path, field_map=dict(GENERIC_AB_MAP, question="question"))
    with pytest.raises(ConfigError, match="not both"):
        load_preference_data("generic", path=path, field_map=dict(GENERIC_AB_MAP, chosen="answer_1",
                                                                   rejected="answer_2"))
    with pytest.raises(ConfigError, match="exactly one of prompt"):
        load_preference_data("generic", path=path, field_map=dict(GENERIC_AB_MAP, context="question"))
    with pytest.raises(ConfigError, match="only read by the 'generic' adapter"):
        load_preference_data("rewardbench", path=fixture("rewardbench.jsonl"), field_map={"prompt": "x"})


def test_parquet_input(tmp_path):
    from datasets import Dataset

    rows = [r for r in raw_rows("rewardbench.jsonl") if r["id"] not in (4000, 4001)]
    path = tmp_path / "rb.parquet"
    Dataset.from_list(rows).to_parquet(str(path))
    result = load_preference_data("rewardbench", path=str(path))
    assert resolve_data_files(str(path))[0] == "parquet"
    assert [r.id for r in result.records] == ["rewardbench:30", "rewardbench:1002", "rewardbench:2001",
                                              "rewardbench:3001", "rewardbench:3500", "rewardbench:4002"]
    assert result.skipped == [] and result.records[4].tags == {"subset": "hep-python"}


def test_mixed_formats_in_one_directory_are_refused(tmp_path):
    shutil.copy(FIXTURES / "rewardbench.jsonl", tmp_path / "a.jsonl")
    (tmp_path / "b.parquet").write_bytes(b"")
    with pytest.raises(ConfigError, match="mixes JSON and parquet"):
        load_preference_data("rewardbench", path=str(tmp_path))


def test_rm_bench_repository_files_take_their_domain_from_the_file_name():
    """Issue 27 A3: RM-Bench's own data/<domain>_filtered.json files (JSON arrays of {id, subset, prompt,
    chosen[3], rejected[3]}, code rows with language and task_id; no 'domain') load, one file or the folder."""
    repo = FIXTURES / "rm_bench_repo"
    one = load_preference_data("rm_bench", path=str(repo / "code_filtered.json"))
    assert len(one.records) == 9 and not one.skipped
    assert {r.section for r in one.records} == {"code"} and {r.tags["domain"] for r in one.records} == {"code"}
    folder = load_preference_data("rm_bench", path=str(repo))
    assert len(folder.records) == 4 * 9 and not folder.skipped
    by_domain = Counter(r.tags["domain"] for r in folder.records)
    assert by_domain == {"chat": 18, "code": 9, "safety-refuse": 9}
    assert {r.section for r in folder.records} == {"chat", "code", "safety"}
    difficulties = Counter(r.tags["difficulty"] for r in folder.records if r.tags["domain"] == "chat")
    assert difficulties == {"hard": 6, "normal": 6, "easy": 6}


def test_rm_bench_row_without_domain_in_an_unnamed_file_is_a_counted_bad_row(tmp_path):
    rows = json.loads((FIXTURES / "rm_bench_repo" / "chat_filtered.json").read_text())
    (tmp_path / "mine.json").write_text(json.dumps(rows))
    with pytest.raises(ConfigError, match=r"names no RM-Bench domain \(<domain>_filtered.json"):
        load_preference_data("rm_bench", path=str(tmp_path / "mine.json"))
    rows[1]["domain"] = "chat"
    (tmp_path / "mine.json").write_text(json.dumps(rows))
    result = load_preference_data("rm_bench", path=str(tmp_path / "mine.json"), max_bad_fraction=0.5)
    assert len(result.records) == 9 and len(result.skipped) == 1 and "names no RM-Bench domain" in result.skipped[0][1]
