"""The native checkpoint: NeMo 2.0's directory layout.

```
CKPT/
  context/
    model_config.yaml   architecture (our ModelConfig; 🤗-compatible field names)
    thinkrm.json        format version, the TP/PP it was saved with, weights prefix
    tokenizer/          🤗 tokenizer files (when known)
    run_config.yaml     the resolved config of the run that wrote it (training checkpoints)
  weights/              megatron-core dist_checkpointing, torch_dist format
```

``weights/`` keys carry the ``module.`` prefix NeMo 2.0 uses and megatron's own
layer-stacked, layout-free naming, so the checkpoint loads at any TP/PP whatever
it was saved with: megatron reshards on load.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import torch
import yaml

from nemo_thinkrm.checkpoint.atomic import atomic_directory
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import ModelConfig, RopeScalingConfig, TokenizerConfig
from nemo_thinkrm.runtime.distributed import is_rank0
from nemo_thinkrm.runtime.distributed import barrier

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
WEIGHTS_PREFIX = "module."
NEMO1_PREFIX = "model."


def is_native_checkpoint(path: str | Path) -> bool:
    p = Path(path)
    return (p / "context" / "model_config.yaml").is_file() and (p / "weights").is_dir()


def is_complete_dist_checkpoint(weights: Path) -> bool:
    """megatron writes ``metadata.json`` only after every shard is saved."""
    return (weights / "metadata.json").is_file()


def model_config_to_dict(cfg: ModelConfig) -> dict[str, Any]:
    return asdict(cfg)


def model_config_from_dict(d: dict[str, Any]) -> ModelConfig:
    d = dict(d)
    rope = d.pop("rope_scaling", None)
    tok = d.pop("tokenizer", None) or {}
    try:
        cfg = ModelConfig(**d, rope_scaling=RopeScalingConfig(**rope) if rope else None,
                          tokenizer=TokenizerConfig(**tok))
    except TypeError as exc:
        raise ConfigError(f"model_config.yaml does not match this version's ModelConfig: {exc}") from exc
    cfg.validate()
    return cfg


def read_model_config(path: str | Path) -> ModelConfig:
    p = Path(path) / "context" / "model_config.yaml"
    if not p.is_file():
        raise ConfigError(f"{path} is not a native checkpoint (no context/model_config.yaml)")
    return model_config_from_dict(yaml.safe_load(p.read_text()))


def write_context(ctx_dir: Path, cfg: ModelConfig, *, tokenizer: Any = None,
                  run_config: Optional[str] = None, extra: Optional[dict] = None) -> None:
    """Rank-0 side of a save: config, tokenizer, provenance."""
    from megatron.core import parallel_state as ps

    ctx_dir.mkdir(parents=True, exist_ok=True)
    (ctx_dir / "model_config.yaml").write_text(yaml.safe_dump(model_config_to_dict(cfg), sort_keys=False))
    meta = {"format": "nemo_thinkrm.native", "version": FORMAT_VERSION, "weights_prefix": WEIGHTS_PREFIX,
            "saved_tensor_model_parallel_size": ps.get_tensor_model_parallel_world_size(),
            "saved_pipeline_model_parallel_size": ps.get_pipeline_model_parallel_world_size(),
            **(extra or {})}
    (ctx_dir / "thinkrm.json").write_text(json.dumps(meta, indent=2))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(ctx_dir / "tokenizer"))
    if run_config is not None:
        (ctx_dir / "run_config.yaml").write_text(run_config)


def model_sharded_state_dict(module: torch.nn.Module, prefix: str = WEIGHTS_PREFIX) -> dict:
    return module.sharded_state_dict(prefix=prefix)


def save_weights(module: torch.nn.Module, weights_dir: Path, prefix: str = WEIGHTS_PREFIX,
                 extra_sharded: Optional[dict] = None) -> None:
    """All ranks: write this rank's shards of the model (and e.g. optimizer) state."""
    from megatron.core import dist_checkpointing

    weights_dir.mkdir(parents=True, exist_ok=True)
    barrier()
    state = model_sharded_state_dict(module, prefix)
    if extra_sharded:
        state = {**state, **extra_sharded}
    dist_checkpointing.save(state, str(weights_dir))


def save_native(module: torch.nn.Module, out: str | Path, cfg: ModelConfig, *, tokenizer: Any = None,
                run_config: Optional[str] = None, overwrite: bool = False) -> Path:
    """Save a model as a native checkpoint, atomically. Call on every rank."""
    with atomic_directory(out, overwrite=overwrite) as tmp:
        save_weights(module, tmp / "weights")
        if is_rank0():
            write_context(tmp / "context", cfg, tokenizer=tokenizer, run_config=run_config)
    return Path(out)


def strip_prefix(state: dict, prefix: str) -> dict:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def load_weights(module: torch.nn.Module, weights_dir: str | Path, prefix: str = WEIGHTS_PREFIX) -> None:
    """Load dist-checkpoint weights into this rank's module, at whatever layout it has.

    ``_extra_state`` entries (Transformer Engine FP8 metadata) are not requested, so a
    checkpoint written with TE layers loads into local layers and back.
    """
    from megatron.core import dist_checkpointing

    weights_dir = Path(weights_dir)
    if not is_complete_dist_checkpoint(weights_dir):
        raise ConfigError(f"{weights_dir} is not a complete megatron dist checkpoint (no metadata.json)")
    sharded = {k: v for k, v in model_sharded_state_dict(module, prefix).items() if "_extra_state" not in k}
    _check_shapes(sharded, weights_dir)
    loaded = dist_checkpointing.load(sharded, str(weights_dir))
    result = module.load_state_dict(strip_prefix(loaded, prefix), strict=False)
    missing = [k for k in result.missing_keys if "_extra_state" not in k]
    if missing:
        raise ConfigError(f"checkpoint {weights_dir} did not provide: {missing[:8]}")


def _check_shapes(sharded: dict, weights_dir: Path) -> None:
    """Name the tensor when the checkpoint does not fit the model (before megatron's own error)."""
    from megatron.core import dist_checkpointing
    from megatron.core.dist_checkpointing.mapping import ShardedTensor

    meta = dist_checkpointing.load_tensors_metadata(str(weights_dir))
    for name, sh in sharded.items():
        if not isinstance(sh, ShardedTensor):
            continue
        if sh.key not in meta:
            raise ConfigError(f"checkpoint {weights_dir} has no tensor {sh.key!r} (needed for {name}); "
                              "does the model config match the checkpoint?")
        have = tuple(meta[sh.key].global_shape)
        if have != tuple(sh.global_shape):
            raise ConfigError(f"shape mismatch for {sh.key}: checkpoint {have}, model {tuple(sh.global_shape)}")


def load_native(module: torch.nn.Module, path: str | Path) -> None:
    load_weights(module, Path(path) / "weights")


def native_tokenizer_dir(path: str | Path) -> Optional[Path]:
    p = Path(path) / "context" / "tokenizer"
    return p if p.is_dir() else None
