"""megatron logits == 🤗 transformers logits for the same weights (TP=1, fp32), and the
mapping exports back to the identical 🤗 tensors."""

from __future__ import annotations

import pytest
import torch
import transformers

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.parallel import ParallelConfig
from nemo_thinkrm.models.builder import build_gpt_model
from nemo_thinkrm.models.hf_io import HFCheckpointReader
from nemo_thinkrm.models.hf_mapping import iter_megatron_full_tensors, megatron_to_hf_tensors
from nemo_thinkrm.models.loading import load_hf_weights, model_config_for_hf_dir
from nemo_thinkrm.training.parity import megatron_logits
from tests.helpers import VARIANTS
from tests.helpers import parity_ids

TOL = 1e-4


def _loaded(hf_dir):
    """(config, megatron model at TP=1 filled from the 🤗 checkpoint)."""
    cfg = model_config_for_hf_dir(hf_dir)
    model = build_gpt_model(cfg, ParallelConfig())
    load_hf_weights(model, cfg, hf_dir)
    return cfg, model


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_logits_match_transformers(variant, tiny_hf_dirs, megatron_single):
    hf_dir = tiny_hf_dirs[variant]
    cfg, model = _loaded(hf_dir)
    ids = parity_ids(cfg)
    ours = megatron_logits(model, cfg, ids)
    ref = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()(ids).logits
    assert ref.abs().max() > 1.0, "test model too flat to prove anything"
    diff = (ours - ref).abs().max().item()
    assert diff <= TOL, f"{variant}: max |Δlogit| {diff:.2e}"
    assert torch.equal(ours.argmax(-1), ref.argmax(-1))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_export_gives_back_identical_hf_tensors(variant, tiny_hf_dirs, megatron_single):
    hf_dir = tiny_hf_dirs[variant]
    cfg, model = _loaded(hf_dir)
    reader = HFCheckpointReader(hf_dir)
    exported = {}
    for rule, full in iter_megatron_full_tensors(model, cfg, lambda t: [t], 0, 1):
        exported.update(megatron_to_hf_tensors(rule, full, cfg))
    expected = reader.names() - ({"lm_head.weight"} if cfg.tie_word_embeddings else set())
    assert set(exported) == expected
    for name, tensor in exported.items():
        assert torch.equal(tensor, reader.get(name)), name


def test_llama3_rope_frequencies_use_configured_values(tiny_hf_dirs, megatron_single):
    """megatron hard-codes low=1/high=4/original=8192; our config uses 2/8/64."""
    cfg = model_config_for_hf_dir(tiny_hf_dirs["llama"])
    assert cfg.rope_scaling is not None and cfg.rope_scaling.original_max_position_embeddings == 64
    model = build_gpt_model(cfg, ParallelConfig())
    hf = transformers.AutoModelForCausalLM.from_pretrained(tiny_hf_dirs["llama"], dtype=torch.float32)
    assert torch.allclose(model.rotary_pos_emb.inv_freq, hf.model.rotary_emb.inv_freq, rtol=1e-6, atol=0)


def test_family_mismatch_is_a_clear_error(tiny_hf_dirs, megatron_single):
    cfg = model_config_for_hf_dir(tiny_hf_dirs["qwen2"])
    cfg.family = "llama"  # Qwen2 weights (with q/k/v biases) read as Llama
    model = build_gpt_model(cfg, ParallelConfig())
    with pytest.raises(ConfigError, match="would ignore.*bias"):
        load_hf_weights(model, cfg, tiny_hf_dirs["qwen2"])
