"""Build tiny random 🤗 checkpoints locally (tests and the quickstart; no hub access).

``initializer_range`` defaults to 0.1: with 🤗's 0.02 the logits of a tiny random
model are ~0.1 in size and a 1e-4 parity tolerance would prove little.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nemo_thinkrm.config.model import ModelConfig, RopeScalingConfig, model_config_to_hf


def tiny_model_config(family: str = "llama", *, tied: bool = False, vocab_size: int = 512,
                      num_layers: int = 2, hidden_size: int = 64, heads: int = 4, kv_heads: int = 2,
                      ffn: int = 128, head_dim: int | None = None, llama3_rope: bool = False,
                      init_std: float = 0.1, max_positions: int = 2048) -> ModelConfig:
    cfg = ModelConfig(family=family, num_layers=num_layers, hidden_size=hidden_size,
                      ffn_hidden_size=ffn, num_attention_heads=heads, num_query_groups=kv_heads,
                      kv_channels=head_dim, vocab_size=vocab_size, max_position_embeddings=max_positions,
                      rotary_base=10000.0 if family == "llama" else 1000000.0,
                      layernorm_epsilon=1e-5 if family == "llama" else 1e-6,
                      tie_word_embeddings=tied, init_method_std=init_std)
    if llama3_rope:
        # Non-default low/high/original values: megatron hard-codes 1/4/8192, so this
        # catches a builder that forgets to recompute the frequencies.
        cfg.rope_scaling = RopeScalingConfig(factor=8.0, low_freq_factor=2.0, high_freq_factor=8.0,
                                             original_max_position_embeddings=64)
    cfg.validate()
    return cfg


def build_hf_model(cfg: ModelConfig, seed: int = 0, dtype: torch.dtype = torch.float32):
    """A randomly initialised 🤗 causal LM with this architecture."""
    import transformers

    hf_cfg: dict[str, Any] = model_config_to_hf(cfg)
    arch = hf_cfg.pop("architectures")[0]
    model_type = hf_cfg.pop("model_type")
    hf_cfg.pop("torch_dtype", None)
    config = transformers.AutoConfig.for_model(model_type, **hf_cfg)
    config.architectures = [arch]
    torch.manual_seed(seed)
    model = getattr(transformers, arch)(config).to(dtype)
    if cfg.add_qkv_bias:  # 🤗 inits biases to zero; make them visible in the logits
        with torch.no_grad():
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    proj.bias.normal_(0, cfg.init_method_std)
    with torch.no_grad():  # RMSNorm weights init to 1; perturb so a swapped norm is visible
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def save_tiny_hf_checkpoint(cfg: ModelConfig, out_dir: str | Path, seed: int = 0, tokenizer=None) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = build_hf_model(cfg, seed)
    model.save_pretrained(out, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out
