"""🤗 → native → 🤗 is bit-exact; the export loads in transformers with identical logits;
NeMo 1.x files (both weight layouts) import; tool errors are one clear line."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import torch
import transformers
import yaml
from safetensors import safe_open

from nemo_thinkrm.checkpoint import convert, native
from nemo_thinkrm.convert import hf_to_nemo, nemo_to_hf
from nemo_thinkrm.config.parallel import ParallelConfig
from nemo_thinkrm.models.builder import build_gpt_model
from nemo_thinkrm.models.hf_io import HFCheckpointReader
from nemo_thinkrm.models.hf_mapping import iter_megatron_full_tensors
from nemo_thinkrm.models.loading import load_hf_weights, model_config_for_hf_dir
from tests.helpers import VARIANTS


def _tensors(hf_dir: Path) -> dict[str, torch.Tensor]:
    reader = HFCheckpointReader(hf_dir)
    return {n: reader.get(n) for n in reader.names()}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_hf_native_hf_roundtrip_is_bit_exact(variant, tiny_hf_dirs, megatron_single, tmp_path):
    src = tiny_hf_dirs[variant]
    convert.to_native(src, tmp_path / "native")
    assert native.is_native_checkpoint(tmp_path / "native")
    convert.to_hf(tmp_path / "native", tmp_path / "hf")
    a, b = _tensors(src), _tensors(tmp_path / "hf")
    if model_config_for_hf_dir(src).tie_word_embeddings:
        a.pop("lm_head.weight", None)
    assert set(a) == set(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]), name
    # and 🤗 transformers loads the export with identical logits
    ids = torch.randint(0, 512, (1, 30), generator=torch.Generator().manual_seed(1))
    ref = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()(ids).logits
    got = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()(ids).logits
    assert torch.equal(ref, got)


def test_bf16_conversion_and_sharded_index(tiny_hf_dirs, megatron_single, tmp_path):
    convert.to_native(tiny_hf_dirs["llama"], tmp_path / "n16", dtype="bfloat16")
    from nemo_thinkrm.checkpoint.hf_export import export_hf

    cfg = native.read_model_config(tmp_path / "n16")
    assert cfg.params_dtype == "bfloat16"
    model = build_gpt_model(cfg, ParallelConfig(), backend="local")
    native.load_native(model, tmp_path / "n16")
    export_hf(model, cfg, tmp_path / "hf16", max_shard_bytes=20_000, progress=False)
    files = sorted(p.name for p in (tmp_path / "hf16").glob("*.safetensors"))
    assert len(files) > 1 and files[0].endswith(f"-of-{len(files):05d}.safetensors")
    with safe_open(tmp_path / "hf16" / files[0], "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.bfloat16
    orig = _tensors(tiny_hf_dirs["llama"])
    back = _tensors(tmp_path / "hf16")
    for name in orig:
        assert torch.equal(orig[name].to(torch.bfloat16), back[name]), name


def _nemo1_per_rank(hf_dir: Path, out: Path, tp: int) -> None:
    """A NeMo 1.x-style .nemo: per-rank torch.save files, TE names, 'model.' prefix, BytesIO extra state."""
    from nemo_thinkrm.models.hf_mapping import shard

    cfg = model_config_for_hf_dir(hf_dir)
    model = build_gpt_model(cfg, ParallelConfig(), backend="local")
    load_hf_weights(model, cfg, hf_dir)
    fulls = dict((r.megatron_name, (r, t)) for r, t in iter_megatron_full_tensors(model, cfg, lambda t: [t], 0, 1))
    te = {"input_layernorm.weight": "self_attention.linear_qkv.layer_norm_weight",
          "pre_mlp_layernorm.weight": "mlp.linear_fc1.layer_norm_weight"}
    stage = out.parent / "stage"
    for r in range(tp):
        sd = {}
        for name, (rule, full) in fulls.items():
            if rule.vocab:  # NeMo pads the vocabulary to a multiple of 128 × TP
                full = torch.cat([full, full.new_zeros(128 * tp - full.shape[0] % (128 * tp) if full.shape[0] % (128 * tp) else 0, full.shape[1])])
            key = name
            for a, b in te.items():
                key = key.replace(a, b)
            sd["model." + key] = shard(rule, full, r, tp).clone()
        sd["model.decoder.layers.0.self_attention.linear_qkv._extra_state"] = io.BytesIO(b"fp8")
        (stage / f"mp_rank_{r:02d}").mkdir(parents=True)
        torch.save(sd, stage / f"mp_rank_{r:02d}" / "model_weights.ckpt")
    nemo_cfg = {"num_layers": cfg.num_layers, "hidden_size": cfg.hidden_size, "ffn_hidden_size": cfg.ffn_hidden_size,
                "num_attention_heads": cfg.num_attention_heads, "num_query_groups": cfg.num_query_groups,
                "normalization": "rmsnorm", "activation": "fast-swiglu", "bias": False,
                "position_embedding_type": "rope", "rotary_base": cfg.rotary_base,
                "layernorm_epsilon": cfg.layernorm_epsilon, "vocab_size": cfg.vocab_size,
                "share_embeddings_and_output_weights": cfg.tie_word_embeddings,
                "qkv_bias": cfg.add_qkv_bias, "tensor_model_parallel_size": tp}
    (stage / "model_config.yaml").write_text(yaml.safe_dump(nemo_cfg))
    with tarfile.open(out, "w:") as tar:
        for p in sorted(stage.iterdir()):
            tar.add(p, arcname=p.name)


@pytest.mark.parametrize("variant", ["qwen2", "llama_tied"])
def test_nemo1_per_rank_import(variant, tiny_hf_dirs, megatron_single, tmp_path):
    _nemo1_per_rank(tiny_hf_dirs[variant], tmp_path / "m.nemo", tp=2)
    with convert.open_source(tmp_path / "m.nemo") as src:
        assert src.kind == "nemo1-per-rank" and src.cfg.family == model_config_for_hf_dir(tiny_hf_dirs[variant]).family
    convert.to_hf(tmp_path / "m.nemo", tmp_path / "hf")
    a, b = _tensors(tiny_hf_dirs[variant]), _tensors(tmp_path / "hf")
    a.pop("lm_head.weight", None) if variant == "llama_tied" else None
    assert set(a) == set(b) and all(torch.equal(a[n], b[n]) for n in a)


def test_nemo1_dist_export_and_import(tiny_hf_dirs, megatron_single, tmp_path):
    convert.to_nemo1(tiny_hf_dirs["qwen3"], tmp_path / "q.nemo")
    with tarfile.open(tmp_path / "q.nemo") as tar:  # uncompressed tar with the NeMo 1.x members
        names = tar.getnames()
        assert tar.fileobj.read(0) == b"" and "model_config.yaml" in names
        assert any(n.startswith("model_weights/") and n.endswith("metadata.json") for n in names)
    convert.to_native(tmp_path / "q.nemo", tmp_path / "native")
    convert.to_hf(tmp_path / "native", tmp_path / "hf")
    a, b = _tensors(tiny_hf_dirs["qwen3"]), _tensors(tmp_path / "hf")
    a.pop("lm_head.weight", None)
    assert set(a) == set(b) and all(torch.equal(a[n], b[n]) for n in a)


def test_tool_errors_are_one_line(tiny_hf_dirs, megatron_single, tmp_path, capsys):
    assert nemo_to_hf(["--nemo", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "exists").mkdir()
    assert hf_to_nemo(["--hf", str(tiny_hf_dirs["llama"]), "--out", str(tmp_path / "exists")]) == 2
    assert "already exists" in capsys.readouterr().err
    bad = tmp_path / "mistral"
    bad.mkdir()
    (bad / "config.json").write_text('{"architectures": ["MistralForCausalLM"]}')
    (bad / "model.safetensors").write_bytes(b"")
    assert hf_to_nemo(["--hf", str(bad), "--out", str(tmp_path / "o2")]) == 2
    assert "unsupported architecture" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists() and not list(tmp_path.glob(".tmp-*"))
