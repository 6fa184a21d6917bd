"""NeMo 1.x ``.nemo`` files: import (start from NeMo-era checkpoints) and export.

A ``.nemo`` is an uncompressed tar with ``model_config.yaml`` and the weights as
either

* ``model_weights/`` — a megatron dist checkpoint (keys prefixed ``model.``), which
  loads into any TP/PP directly; or
* per-rank ``mp_rank_XX/model_weights.ckpt`` (TP only) or
  ``tp_rank_XX_pp_rank_XXX/model_weights.ckpt`` — ``torch.save``d state dicts of
  each rank's shard, which we glue back into full tensors with the same layout
  rules as the 🤗 mapping.

Both Transformer Engine names (``linear_qkv.layer_norm_weight``) and local names
(``input_layernorm.weight``) are understood; ``_extra_state`` entries are ignored.
Only GPT models of the Llama / Qwen2 / Qwen3 shape are supported; others are
refused with the offending config field named.
"""

from __future__ import annotations

import io
import logging
import re
import tarfile
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
import yaml

from nemo_thinkrm.checkpoint.native import model_config_from_dict, model_config_to_dict
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import ModelConfig, RopeScalingConfig, TokenizerConfig
from nemo_thinkrm.models.hf_mapping import ParamRule, unshard

logger = logging.getLogger(__name__)

NEMO1_PREFIX = "model."
_TE_TO_LOCAL = {
    "self_attention.linear_qkv.layer_norm_weight": "input_layernorm.weight",
    "mlp.linear_fc1.layer_norm_weight": "pre_mlp_layernorm.weight",
}
_RANK_DIR = re.compile(r"^(?:mp_rank_(\d+)|tp_rank_(\d+)_pp_rank_(\d+))$")


def is_nemo1_file(path: str | Path) -> bool:
    p = Path(path)
    return p.is_file() and tarfile.is_tarfile(p)


@contextmanager
def extracted(path: str | Path) -> Iterator[Path]:
    """Unpack the tar into a temporary directory (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="nemo1-") as tmp:
        with tarfile.open(path, "r:*") as tar:
            tar.extractall(tmp, filter="data")
        root = Path(tmp)
        # some exporters nest everything under "./" or one top directory
        if not (root / "model_config.yaml").is_file():
            found = list(root.rglob("model_config.yaml"))
            if not found:
                raise ConfigError(f"{path} has no model_config.yaml; not a NeMo 1.x checkpoint")
            root = found[0].parent
        yield root


def model_config_from_nemo1(d: dict[str, Any]) -> ModelConfig:
    """Map NeMo 1.x megatron_gpt config fields to our ModelConfig."""
    if d.get("thinkrm_model_config"):
        return model_config_from_dict(d["thinkrm_model_config"])
    norm = str(d.get("normalization", "layernorm")).lower()
    act = str(d.get("activation", "gelu")).lower()
    if norm != "rmsnorm":
        raise ConfigError(f"model_config.yaml normalization={norm!r}: only rmsnorm (Llama/Qwen) is supported")
    if "swiglu" not in act:
        raise ConfigError(f"model_config.yaml activation={act!r}: only (fast-)swiglu is supported")
    if d.get("position_embedding_type", "rope") != "rope":
        raise ConfigError("model_config.yaml position_embedding_type must be rope")
    if d.get("bias", False):
        raise ConfigError("model_config.yaml bias=true (linear biases) is not supported")
    family = "qwen3" if d.get("qk_layernorm") else ("qwen2" if d.get("qkv_bias") or d.get("add_qkv_bias") else "llama")
    rope = None
    if d.get("scale_positional_embedding"):
        rope = RopeScalingConfig(factor=float(d.get("rope_scaling_factor", 8.0)))
    heads = int(d["num_attention_heads"])
    cfg = ModelConfig(
        family=family, num_layers=int(d["num_layers"]), hidden_size=int(d["hidden_size"]),
        ffn_hidden_size=int(d["ffn_hidden_size"]), num_attention_heads=heads,
        num_query_groups=int(d.get("num_query_groups") or heads), kv_channels=d.get("kv_channels"),
        vocab_size=int(d.get("vocab_size") or 0) or 1,  # fixed from the embedding rows below
        max_position_embeddings=int(d.get("max_position_embeddings") or d.get("encoder_seq_length") or 4096),
        rotary_base=float(d.get("rotary_base", 10000.0)), rope_scaling=rope,
        layernorm_epsilon=float(d.get("layernorm_epsilon", 1e-5)),
        tie_word_embeddings=bool(d.get("share_embeddings_and_output_weights", False)),
        init_method_std=float(d.get("init_method_std", 0.02)),
        tokenizer=TokenizerConfig(name="tiny_bpe"),
    )
    return cfg


def _local_name(key: str) -> Optional[str]:
    if "_extra_state" in key:
        return None
    if key.startswith(NEMO1_PREFIX):
        key = key[len(NEMO1_PREFIX):]
    for te, local in _TE_TO_LOCAL.items():
        if key.endswith(te):
            key = key[: -len(te)] + local
    return key


def _load_rank_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # NeMo stores _extra_state as BytesIO, which weights_only refuses
        logger.warning("%s needs full unpickling (it holds non-tensor objects); load only files you trust",
                       path)
        sd = torch.load(path, map_location="cpu", weights_only=False)
    if "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    return {n: v for k, v in sd.items() if (n := _local_name(k)) is not None and isinstance(v, torch.Tensor)}


class PerRankSource:
    """Full tensors assembled from a per-rank NeMo 1.x layout."""

    def __init__(self, root: Path, cfg: ModelConfig) -> None:
        ranks: dict[tuple[int, int], Path] = {}
        for sub in root.iterdir():
            m = _RANK_DIR.match(sub.name)
            if m and (sub / "model_weights.ckpt").is_file():
                tp = int(m.group(1) if m.group(1) is not None else m.group(2))
                pp = int(m.group(3) or 0)
                ranks[(tp, pp)] = sub / "model_weights.ckpt"
        if not ranks:
            raise ConfigError(f"{root} has neither model_weights/ nor mp_rank_XX/model_weights.ckpt")
        self.tp = 1 + max(t for t, _ in ranks)
        self.pp = 1 + max(p for _, p in ranks)
        if len(ranks) != self.tp * self.pp:
            raise ConfigError(f"incomplete per-rank checkpoint: found {sorted(ranks)} for TP={self.tp} PP={self.pp}")
        self.cfg = cfg
        self.per_stage = cfg.num_layers // self.pp
        self.shards = {k: _load_rank_file(v) for k, v in sorted(ranks.items())}
        emb = self.shards[(0, 0)].get("embedding.word_embeddings.weight")
        if emb is None:
            raise ConfigError(f"{root}: first rank has no embedding.word_embeddings.weight")

    def padded_vocab_rows(self) -> int:
        return self.shards[(0, 0)]["embedding.word_embeddings.weight"].shape[0] * self.tp

    def full(self, rule: ParamRule) -> torch.Tensor:
        if rule.layer is not None:
            pp = rule.layer // self.per_stage
            local = rule.megatron_name.replace(f"decoder.layers.{rule.layer}.",
                                               f"decoder.layers.{rule.layer - pp * self.per_stage}.", 1)
        elif rule.megatron_name.startswith("embedding."):
            pp, local = 0, rule.megatron_name
        else:
            pp, local = self.pp - 1, rule.megatron_name
        try:
            pieces = [self.shards[(t, pp)][local] for t in range(self.tp)]
        except KeyError as exc:
            raise ConfigError(f"NeMo 1.x checkpoint has no tensor {local!r} on stage {pp}") from exc
        full = unshard(rule, pieces)
        return full[: self.cfg.vocab_size] if rule.vocab else full


def read_nemo1_config(root: Path) -> dict[str, Any]:
    return yaml.safe_load((root / "model_config.yaml").read_text()) or {}


def nemo1_vocab_rows(root: Path) -> int:
    """Rows of the embedding (vocab, possibly padded) from either weights layout."""
    if (root / "model_weights").is_dir():
        from megatron.core import dist_checkpointing

        meta = dist_checkpointing.load_tensors_metadata(str(root / "model_weights"))
        key = NEMO1_PREFIX + "embedding.word_embeddings.weight"
        if key not in meta:
            raise ConfigError(f"{root}/model_weights has no {key}")
        return int(meta[key].global_shape[0])
    raise ConfigError("vocab rows of a per-rank checkpoint come from PerRankSource")


def write_nemo1(out: Path, cfg: ModelConfig, weights_dir: Path, tokenizer_dir: Optional[Path]) -> None:
    """Pack a ``.nemo`` (tar, mode ``w:``) from a dist checkpoint saved with the ``model.`` prefix."""
    nemo_cfg = {
        "mcore_gpt": True, "num_layers": cfg.num_layers, "hidden_size": cfg.hidden_size,
        "ffn_hidden_size": cfg.ffn_hidden_size, "num_attention_heads": cfg.num_attention_heads,
        "num_query_groups": cfg.num_query_groups, "kv_channels": cfg.head_dim,
        "max_position_embeddings": cfg.max_position_embeddings, "encoder_seq_length": cfg.max_position_embeddings,
        "normalization": "rmsnorm", "activation": "fast-swiglu", "bias": False,
        "position_embedding_type": "rope", "rotary_base": cfg.rotary_base,
        "layernorm_epsilon": cfg.layernorm_epsilon, "init_method_std": cfg.init_method_std,
        "share_embeddings_and_output_weights": cfg.tie_word_embeddings,
        "qk_layernorm": cfg.qk_layernorm, "qkv_bias": cfg.add_qkv_bias, "vocab_size": cfg.vocab_size,
        "tensor_model_parallel_size": 1, "pipeline_model_parallel_size": 1,
        "scale_positional_embedding": cfg.rope_scaling is not None,
        "rope_scaling_factor": cfg.rope_scaling.factor if cfg.rope_scaling else None,
        "tokenizer": {"library": "huggingface", "type": "nemo:tokenizer" if tokenizer_dir else None},
        "thinkrm_model_config": model_config_to_dict(cfg),
    }
    tmp = out.with_name(f".tmp-{out.name}")
    with tarfile.open(tmp, "w:") as tar:
        data = yaml.safe_dump(nemo_cfg, sort_keys=False).encode()
        info = tarfile.TarInfo("model_config.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        tar.add(weights_dir, arcname="model_weights")
        if tokenizer_dir is not None:
            tar.add(tokenizer_dir, arcname="tokenizer")
    tmp.replace(out)
