"""HF↔megatron layout functions against hand-built tensors."""

from __future__ import annotations

import pytest
import torch

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.models import hf_mapping as hm
from nemo_thinkrm.examples.tiny_hf import tiny_model_config


def _rule(cfg, suffix):
    return next(r for r in hm.parameter_rules(cfg) if r.megatron_name.endswith(suffix) and
                (r.layer in (None, 0)))


def test_qkv_fusion_orders_rows_per_query_group():
    cfg = tiny_model_config("llama", hidden_size=8, heads=4, kv_heads=2, ffn=16)  # head_dim 2, 2 q per group
    hd = cfg.head_dim
    q = torch.arange(4 * hd).float().unsqueeze(1) + 100  # rows 100..107: heads q0..q3
    k = torch.arange(2 * hd).float().unsqueeze(1) + 200
    v = torch.arange(2 * hd).float().unsqueeze(1) + 300
    rule = _rule(cfg, "linear_qkv.weight")
    fused = hm.fuse(rule, [q, k, v], cfg).squeeze(1).tolist()
    # group 0: q0 q1 k0 v0 ; group 1: q2 q3 k1 v1 (each head 2 rows)
    assert fused == [100, 101, 102, 103, 200, 201, 300, 301, 104, 105, 106, 107, 202, 203, 302, 303]
    back = hm.split(rule, hm.fuse(rule, [q, k, v], cfg), cfg)
    assert all(torch.equal(a, b) for a, b in zip(back, [q, k, v]))


def test_gate_up_is_split_per_rank_not_chunked():
    cfg = tiny_model_config("llama", hidden_size=8, heads=4, kv_heads=2, ffn=4)
    rule = _rule(cfg, "linear_fc1.weight")
    gate = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    up = torch.tensor([[5.0], [6.0], [7.0], [8.0]])
    full = hm.fuse(rule, [gate, up], cfg)
    r0, r1 = (hm.shard(rule, full, r, 2).squeeze(1).tolist() for r in (0, 1))
    assert r0 == [1, 2, 5, 6] and r1 == [3, 4, 7, 8]
    assert torch.equal(hm.unshard(rule, [hm.shard(rule, full, r, 2) for r in (0, 1)]), full)


@pytest.mark.parametrize("tp", [1, 2, 4])
def test_shard_unshard_roundtrip_every_rule(tp):
    cfg = tiny_model_config("qwen2", kv_heads=2, vocab_size=512)
    for rule in hm.parameter_rules(cfg):
        shape = {0: (8 * tp, 6), 1: (6, 8 * tp), None: (6,)}[rule.tp_dim]
        full = torch.randn(*shape)
        pieces = [hm.shard(rule, full, r, tp) for r in range(tp)]
        assert torch.equal(hm.unshard(rule, pieces), full), rule.megatron_name


def test_row_parallel_shards_columns():
    cfg = tiny_model_config("llama")
    rule = _rule(cfg, "linear_proj.weight")
    full = torch.arange(12.0).reshape(2, 6)
    assert hm.shard(rule, full, 1, 2).tolist() == [[3, 4, 5], [9, 10, 11]]


def test_vocab_padding_and_indivisible_shard_error():
    cfg = tiny_model_config("llama")
    rule = _rule(cfg, "word_embeddings.weight")
    padded = hm.pad_vocab(torch.ones(5, 2), 6)
    assert padded.shape == (6, 2) and padded[5].abs().sum() == 0
    with pytest.raises(ConfigError, match="does not divide by TP size 2"):
        hm.shard(rule, torch.ones(5, 2), 0, 2)


def test_rules_per_family():
    names = lambda cfg: {r.megatron_name for r in hm.parameter_rules(cfg)}  # noqa: E731
    llama, qwen2, qwen3 = (tiny_model_config(f) for f in ("llama", "qwen2", "qwen3"))
    assert "decoder.layers.0.self_attention.linear_qkv.bias" in names(qwen2)
    assert "decoder.layers.0.self_attention.linear_qkv.bias" not in names(llama)
    assert "decoder.layers.1.self_attention.k_layernorm.weight" in names(qwen3)
    assert "output_layer.weight" not in names(tiny_model_config("llama", tied=True))
    te = {r.megatron_name for r in hm.parameter_rules(llama, backend="te")}
    assert "decoder.layers.0.mlp.linear_fc1.layer_norm_weight" in te


def test_stage_rules_split_layers_and_tied_output_copy():
    cfg = tiny_model_config("llama", tied=True, num_layers=4)
    first = hm.stage_rules(cfg, "local", 0, 2, has_embedding=True, has_output=False)
    last = hm.stage_rules(cfg, "local", 1, 2, has_embedding=False, has_output=True)
    assert {n for _, n in first if n.startswith("decoder.layers.")} == \
        {n for _, n in last if n.startswith("decoder.layers.")}  # both stages use local indices 0..1
    assert any(r.layer == 3 and n.startswith("decoder.layers.1.") for r, n in last)
    assert ("output_layer.weight" in {n for _, n in last}) and ("embedding.word_embeddings.weight" not in
                                                                 {n for _, n in last})


def test_missing_hf_tensors_are_named():
    cfg = tiny_model_config("qwen3")
    with pytest.raises(ConfigError, match="lacks"):
        hm.check_hf_names(cfg, {"model.embed_tokens.weight"})
