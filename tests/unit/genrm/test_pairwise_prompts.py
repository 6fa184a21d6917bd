"""Prompt loading for pairwise RLHF: plain prompts, chat messages and HH-RLHF transcripts."""

from __future__ import annotations

import json

import pytest

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.data.prompts import hh_rlhf_messages, load_prompts


def test_hh_rlhf_transcript_keeps_turns_up_to_the_last_human():
    text = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: What is 2+2?\n\nAssistant: 4"
    assert hh_rlhf_messages(text) == [{"role": "user", "content": "Hi there"},
                                      {"role": "assistant", "content": "Hello!"},
                                      {"role": "user", "content": "What is 2+2?"}]


def test_load_prompts_all_forms_and_bad_rows(tmp_path):
    rows = [{"prompt": "Tell me a joke"},
            {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Why?"}]},
            {"chosen": "\n\nHuman: Capital of France?\n\nAssistant: Paris", "rejected": "..."},
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
            {"other": 1}]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts = load_prompts(str(path))
    assert [p[-1]["content"] for p in prompts] == ["Tell me a joke", "Why?", "Capital of France?"]
    path.write_text(json.dumps({"other": 1}) + "\n")
    with pytest.raises(ConfigError, match="no usable prompts"):
        load_prompts(str(path))
