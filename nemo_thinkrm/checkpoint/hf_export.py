"""Write a megatron model as a 🤗 checkpoint directory that transformers and vLLM load as is.

Tensors are streamed: gathered one at a time across TP, split into 🤗 names, and
written into safetensors shards of bounded size, so memory stays at one model
plus one shard.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

import torch

from nemo_thinkrm.checkpoint.atomic import atomic_directory
from nemo_thinkrm.config.model import ModelConfig, model_config_to_hf
from nemo_thinkrm.models.hf_io import write_index, write_safetensors_shards
from nemo_thinkrm.models.hf_mapping import iter_megatron_full_tensors, megatron_to_hf_tensors
from nemo_thinkrm.models.tokenizer import end_of_turn_token
from nemo_thinkrm.runtime.device import to_host, torch_dtype

logger = logging.getLogger(__name__)


def export_hf(module: torch.nn.Module, cfg: ModelConfig, out: str | Path, *, dtype: Optional[str] = None,
              tokenizer: Any = None, overwrite: bool = False, max_shard_bytes: int = 5 * 1024**3,
              progress: bool = True) -> Path:
    """Single-stage (PP=1, TP=1) export from one process; see ``iter_megatron_full_tensors``
    for multi-rank gathering."""
    dtype = dtype or cfg.params_dtype
    tdtype = torch_dtype(dtype)

    def tensors():
        items = iter_megatron_full_tensors(module, cfg, lambda t: [t], 0, 1)
        if progress:
            from tqdm import tqdm

            items = tqdm(items, desc="exporting tensors", unit="tensor")
        for rule, full in items:
            for name, t in megatron_to_hf_tensors(rule, full, cfg).items():
                yield name, to_host(t).to(tdtype).contiguous()  # files are written from host memory

    with atomic_directory(out, overwrite=overwrite) as tmp:
        weight_map = write_safetensors_shards(tmp, tensors(), max_shard_bytes=max_shard_bytes)
        write_index(tmp, weight_map)
        hf_cfg = model_config_to_hf(cfg, torch_dtype=dtype)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
            hf_cfg.update(_special_token_ids(tokenizer))
        (tmp / "config.json").write_text(json.dumps(hf_cfg, indent=2))
        gen = {k: v for k, v in _special_token_ids(tokenizer).items()} if tokenizer is not None else {}
        (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2))
    logger.info("wrote 🤗 checkpoint %s (%d tensors)", out, len(weight_map))
    return Path(out)


def _special_token_ids(tokenizer: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    eot = tokenizer.convert_tokens_to_ids(end_of_turn_token(tokenizer))
    if eot is not None:
        out["eos_token_id"] = eot
    if tokenizer.bos_token_id is not None:
        out["bos_token_id"] = tokenizer.bos_token_id
    if tokenizer.pad_token_id is not None:
        out["pad_token_id"] = tokenizer.pad_token_id
    return out
