"""A reward model leaves as the 🤗 ``*ForSequenceClassification`` transformers loads (``num_labels=1``),
scores exactly as our megatron model does, comes back (🤗 → native → megatron) with the same scores,
and never pads with the token the score is read at."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import transformers

from nemo_thinkrm.checkpoint import convert
from nemo_thinkrm.checkpoint.hf_export import export_hf, reward_model_tokenizer
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import TokenizerConfig, model_config_from_hf
from nemo_thinkrm.config.parallel import ParallelConfig
from nemo_thinkrm.models.builder import build_gpt_model
from nemo_thinkrm.models.loading import load_hf_weights, model_config_for_hf_dir
from nemo_thinkrm.models.tokenizer import end_of_turn_token, load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TokenizerConfig())


def _reward_model(hf_dir, seed: int = 7):
    """A megatron reward model: the tiny 🤗 causal LM's body under a fresh reward head."""
    from nemo_thinkrm.models.reward_head import attach_reward_head

    cfg = model_config_for_hf_dir(hf_dir)
    model = build_gpt_model(cfg, ParallelConfig(), backend="local")
    load_hf_weights(model, cfg, hf_dir, progress=False)
    attach_reward_head(model, seed=seed)
    with torch.no_grad():  # a head of init scale gives scores ~1e-2; make differences visible
        model.output_layer.weight.mul_(20.0)
    return replace(cfg, head="reward"), model.eval()


def _sequences(tokenizer, lengths=(9, 14, 5)):
    g = torch.Generator().manual_seed(0)
    eot = tokenizer.convert_tokens_to_ids(end_of_turn_token(tokenizer))
    return [torch.randint(10, 400, (n - 1,), generator=g).tolist() + [eot] for n in lengths]


def _megatron_scores(model, seqs):
    with torch.no_grad():
        return torch.stack([model(torch.tensor([s]), torch.arange(len(s)).unsqueeze(0), None)[0, -1, 0]
                            for s in seqs])


@pytest.mark.parametrize("variant", ["llama", "llama_tied", "qwen2", "qwen3"])
def test_export_loads_as_sequence_classification_with_equal_scores(variant, tiny_hf_dirs, megatron_single,
                                                                   tokenizer, tmp_path):
    cfg, model = _reward_model(tiny_hf_dirs[variant])
    export_hf(model, cfg, tmp_path / "rm", tokenizer=tokenizer, progress=False)
    hf_cfg = json.loads((tmp_path / "rm" / "config.json").read_text())
    assert hf_cfg["architectures"][0].endswith("ForSequenceClassification") and hf_cfg["num_labels"] == 1
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm", dtype=torch.float32).eval()
    assert type(hf).__name__ == hf_cfg["architectures"][0] and hf.score.weight.shape == (1, cfg.hidden_size)

    seqs = _sequences(tokenizer)
    ours = _megatron_scores(model, seqs)
    # a right-padded batch, as a user of the export scores it: transformers finds each last real token
    width = max(map(len, seqs))
    ids = torch.tensor([s + [hf.config.pad_token_id] * (width - len(s)) for s in seqs])
    mask = (torch.arange(width)[None] < torch.tensor([len(s) for s in seqs])[:, None]).long()
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=mask).logits[:, 0]
    assert ours.abs().min() > 1e-3 and ours.std() > 1e-2  # not all equal, not all zero
    assert torch.allclose(ours, theirs, atol=1e-5), (ours, theirs)

    # and back: the 🤗 reward model is a source like any other (architecture, head and weights)
    src_cfg = model_config_for_hf_dir(tmp_path / "rm")
    assert src_cfg.head == "reward"
    convert.to_native(tmp_path / "rm", tmp_path / "native")
    from nemo_thinkrm.checkpoint import native

    ncfg = native.read_model_config(tmp_path / "native")
    assert ncfg.head == "reward"
    again = build_gpt_model(ncfg, ParallelConfig(), backend="local").eval()
    native.load_native(again, tmp_path / "native")
    assert torch.equal(_megatron_scores(again, seqs), ours)


def test_reward_tokenizer_never_pads_with_the_scored_token(tokenizer):
    eot = end_of_turn_token(tokenizer)
    assert reward_model_tokenizer(tokenizer) is tokenizer  # tiny BPE pads with <|endoftext|> already
    import copy

    llama_like = copy.deepcopy(tokenizer)
    llama_like.pad_token = eot  # what load_tokenizer does when a tokenizer has no pad token (Llama-3.x)
    fixed = reward_model_tokenizer(llama_like)
    assert fixed.pad_token_id != fixed.convert_tokens_to_ids(eot) and fixed.pad_token == "<|endoftext|>"
    assert llama_like.pad_token == eot  # the caller's tokenizer is left as it was


def test_classifiers_with_more_labels_are_refused(tiny_hf_dirs):
    hf_cfg = json.loads((tiny_hf_dirs["llama"] / "config.json").read_text())
    hf_cfg["architectures"] = ["LlamaForSequenceClassification"]
    assert model_config_from_hf({**hf_cfg, "num_labels": 1}).head == "reward"
    with pytest.raises(ConfigError, match="3 labels"):
        model_config_from_hf({**hf_cfg, "num_labels": 3})
    with pytest.raises(ConfigError, match="2 labels"):  # transformers' default is a 2-way classifier
        model_config_from_hf(hf_cfg)
