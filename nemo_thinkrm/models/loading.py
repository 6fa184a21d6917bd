"""Build a megatron model and fill it from a 🤗 checkpoint directory, on any TP/PP layout."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import torch

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import ModelConfig, model_config_from_hf
from nemo_thinkrm.models.hf_io import HFCheckpointReader
from nemo_thinkrm.models.hf_mapping import check_hf_names, load_hf_into_megatron

logger = logging.getLogger(__name__)


def model_config_for_hf_dir(hf_dir: str | Path, **overrides) -> ModelConfig:
    """The ModelConfig that describes a 🤗 checkpoint (architecture read from config.json)."""
    import json

    path = Path(hf_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{hf_dir} is not a 🤗 checkpoint directory (no config.json)")
    return model_config_from_hf(json.loads(path.read_text()), hf_path=str(hf_dir), **overrides)


def load_hf_weights(module: torch.nn.Module, cfg: ModelConfig, hf_dir: str | Path,
                    reader: Optional[HFCheckpointReader] = None, progress: bool = False) -> int:
    """Copy a 🤗 checkpoint into this rank's stage of ``module``; returns tensors set.

    Checks names both ways first, so a family/config mismatch is one clear error
    rather than a silently half-loaded model.
    """
    from megatron.core import parallel_state as ps

    reader = reader or HFCheckpointReader(hf_dir)
    check_hf_names(cfg, reader.names())
    n = load_hf_into_megatron(module, cfg, reader.get,
                              ps.get_tensor_model_parallel_rank(), ps.get_tensor_model_parallel_world_size(),
                              ps.get_pipeline_model_parallel_rank(), ps.get_pipeline_model_parallel_world_size(),
                              progress=progress)
    logger.info("loaded %d tensors from %s", n, hf_dir)
    return n
