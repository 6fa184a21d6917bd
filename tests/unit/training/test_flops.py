"""Model FLOPs (``training/flops.py``) against independent counts: the weight matrices of the 🤗
model itself, sample lengths of packed rows, and a hand-computed step."""

from __future__ import annotations

import pytest
import torch
import transformers

from nemo_thinkrm.models.loading import model_config_for_hf_dir
from nemo_thinkrm.training.flops import matmul_params, segment_lengths, training_flops


@pytest.mark.parametrize("variant", ["llama", "qwen3", "qwen2"])
def test_matmul_params_are_the_hf_models_linear_weights(tiny_hf_dirs, variant):
    cfg = model_config_for_hf_dir(tiny_hf_dirs[variant])
    hf = transformers.AutoModelForCausalLM.from_pretrained(tiny_hf_dirs[variant])
    linear = sum(m.weight.numel() for m in hf.modules() if isinstance(m, torch.nn.Linear))  # lm_head too, tied or not
    assert matmul_params(cfg) == linear


def test_segment_lengths_of_packed_rows():
    seg = torch.tensor([[1, 1, 1, 2, 2, 0], [1, 1, 2, 2, 2, 2]])
    assert sorted(segment_lengths(seg).tolist()) == [2, 2, 3, 4]
    assert segment_lengths(torch.zeros(2, 4, dtype=torch.long)).numel() == 0


def test_training_flops_by_hand(tiny_hf_dirs):
    cfg = model_config_for_hf_dir(tiny_hf_dirs["llama"])
    n = matmul_params(cfg)
    d = cfg.num_attention_heads * (cfg.kv_channels or cfg.hidden_size // cfg.num_attention_heads)
    # two samples of 3 and 4 tokens: 6·N per token, 6·L·d·l² of causal attention per sample
    want = 6 * n * 7 + 6 * cfg.num_layers * d * (9 + 16)
    assert training_flops(cfg, [3, 4]) == pytest.approx(want, rel=1e-12)
    # CP = 2, each rank holding half of a 4-token sample: both ranks together do the whole sample's work
    assert 2 * training_flops(cfg, [2], cp_size=2) == pytest.approx(training_flops(cfg, [4]), rel=1e-12)
