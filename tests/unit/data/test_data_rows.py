"""The one row reader (``data/rows.py``) and the three loaders on it: a torn line or a mistyped
row costs that row (counted, with file:line), never the file; a mostly-bad file is an error."""

from __future__ import annotations

import gzip
import json

import pytest

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.data.preference import load_preference_data
from nemo_thinkrm.data.prompts import load_prompts
from nemo_thinkrm.data.rows import read_rows
from nemo_thinkrm.data.sft import load_sft_records


def _jsonl(rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def test_clean_file_takes_pyarrow_and_keeps_python_values(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(_jsonl([{"id": 1, "text": "x\u2028y", "n": [1, 2]}, {"id": 2, "text": "z"}]))
    table = read_rows(str(path))
    assert table.slow_files == [] and table.bad == []
    assert [r.data for r in table] == [{"id": 1, "text": "x\u2028y", "n": [1, 2]}, {"id": 2, "text": "z", "n": None}]
    assert [(r.index, r.where) for r in table] == [(0, "a.jsonl:1"), (1, "a.jsonl:2")]
    # nested objects keep their own keys (pyarrow would give each the union, None-filled)
    path.write_text(_jsonl([{"tags": {"domain": "math"}, "m": [{"role": "user"}]},
                            {"tags": {"difficulty": "hard"}, "m": [{"content": "x"}]}]))
    assert [r.data for r in read_rows(str(path))] == [{"tags": {"domain": "math"}, "m": [{"role": "user"}]},
                                                      {"tags": {"difficulty": "hard"}, "m": [{"content": "x"}]}]


def test_torn_and_mistyped_lines_fall_back_to_line_by_line(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_bytes(_jsonl([{"chosen": "a"}, "{not json", "", {"chosen": 5}, "[1, 2]", {"chosen": "x\u2028y"}]).encode()
                     + b'{"chosen": "\xff"}\n')
    table = read_rows(str(path))
    assert table.slow_files == [str(path)]
    # the mistyped row reaches the caller as it is (its own check names it); blank lines are not rows
    assert [(r.where, r.data) for r in table] == [("b.jsonl:1", {"chosen": "a"}), ("b.jsonl:4", {"chosen": 5}),
                                                 ("b.jsonl:6", {"chosen": "x\u2028y"})]
    assert table.bad == [("b.jsonl:2", "not valid JSON (Expecting property name enclosed in double quotes at "
                                       "column 2)"), ("b.jsonl:5", "a JSON array, not an object"),
                         ("b.jsonl:7", "not UTF-8 (byte 13)")]
    assert table.n_lines == 6
    # row indices count bad lines too, so repairing one does not renumber the others
    assert [r.index for r in table] == [0, 2, 4]


def test_indices_run_over_files_and_formats(tmp_path):
    (tmp_path / "1.jsonl.gz").write_bytes(gzip.compress(_jsonl([{"a": 1}, "{torn"]).encode()))
    (tmp_path / "2.jsonl").write_text(_jsonl([{"a": 2}]))
    (tmp_path / "3.json").write_text(json.dumps([{"a": 3}, 7]))
    table = read_rows(str(tmp_path))
    assert [(r.index, r.where, r.data["a"]) for r in table] == [(0, "1.jsonl.gz:1", 1), (2, "2.jsonl:1", 2),
                                                               (3, "3.json row 1", 3)]
    assert [where for where, _ in table.bad] == ["1.jsonl.gz:2", "3.json row 2"]
    (tmp_path / "4.json").write_text("[{\"a\": 1},")
    with pytest.raises(ConfigError, match=r"4\.json: not valid JSON at line 1"):
        read_rows(str(tmp_path))


def test_parquet_and_damaged_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"prompt": ["p1", "p2"]}), tmp_path / "p.parquet")
    assert [(r.where, r.data) for r in read_rows(str(tmp_path / "p.parquet"))] == [
        ("p.parquet row 1", {"prompt": "p1"}), ("p.parquet row 2", {"prompt": "p2"})]
    (tmp_path / "p.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ConfigError, match="p.parquet: not a readable parquet file"):
        read_rows(str(tmp_path / "p.parquet"))


JB = {"pair_id": "p1", "original_id": None, "source": "livebench-math", "question": "1+1?",
      "response_model": "m", "response_A": "2", "response_B": "3", "label": "A>B"}


def test_preference_data_skips_a_torn_line_and_a_mistyped_row(tmp_path):
    path = tmp_path / "jb.jsonl"
    path.write_text(_jsonl([JB, dict(JB, pair_id="p2", response_A=5), "{not json", dict(JB, pair_id="p3")]))
    result = load_preference_data("judgebench", path=str(path))
    assert [r.id for r in result.records] == ["judgebench:p1", "judgebench:p3"]
    assert result.n_rows == 4
    assert result.skipped == [("judgebench:jb.jsonl:3", "not valid JSON (Expecting property name enclosed in double "
                                                        "quotes at column 2)"),
                              ("judgebench:p2", "field 'response_A' must be a string, got int")]


def test_sft_data_skips_bad_lines_with_their_location(tmp_path):
    good = {"prompt": "q", "response": "a"}
    path = tmp_path / "sft.jsonl"
    path.write_text(_jsonl([good, {"prompt": "q2", "response": 5}, "{torn", good]))
    result = load_sft_records(str(path))
    assert len(result.records) == 2 and result.n_rows == 4
    assert result.skipped == [("sft.jsonl:3", "not valid JSON (Expecting property name enclosed in double quotes "
                                              "at column 2)"), ("sft.jsonl:2", "'response' must be a string, got int")]
    path.write_text(_jsonl([good, "{torn", "{torn"]))
    with pytest.raises(ConfigError, match=r"2 of 3 rows are unusable .*sft\.jsonl:2: not valid JSON"):
        load_sft_records(str(path))


def test_prompt_files_skip_bad_lines_with_their_location(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(_jsonl([{"prompt": "a"}, {"prompt": 5}, "{torn", {"prompt": "b"}, {"prompt": "c"}]))
    assert [p[0]["content"] for p in load_prompts(str(path))] == ["a", "b", "c"]
    path.write_text(_jsonl([{"prompt": "a"}, "{torn", {"messages": [{"role": "user", "content": 1}]}]))
    with pytest.raises(ConfigError, match=r"2 of 3 rows are unusable.*p\.jsonl:2: not valid JSON.*p\.jsonl:3: "
                                          r"'messages' must be"):
        load_prompts(str(path))
