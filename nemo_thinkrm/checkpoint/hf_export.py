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
from nemo_thinkrm.config.errors import ConfigError
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
            if cfg.head == "reward":
                tokenizer = reward_model_tokenizer(tokenizer)
            tokenizer.save_pretrained(str(tmp))
            hf_cfg.update(_special_token_ids(tokenizer))
        (tmp / "config.json").write_text(json.dumps(hf_cfg, indent=2))
        gen = {k: v for k, v in _special_token_ids(tokenizer).items()} if tokenizer is not None else {}
        (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2))
    logger.info("wrote 🤗 checkpoint %s (%d tensors)", out, len(weight_map))
    return Path(out)


PAD_CANDIDATES = ("<|finetune_right_pad_id|>", "<|endoftext|>", "<|reserved_special_token_0|>", "<pad>")
"""Tokens a reward model export may pad with when the tokenizer pads with its end-of-turn token
(Llama-3.x-Instruct: ``<|eot_id|>``); the first one in the vocabulary is used."""


def reward_model_tokenizer(tokenizer: Any) -> Any:
    """The tokenizer a 🤗 reward model is saved with: its pad token is never the end-of-turn token.

    transformers' ``*ForSequenceClassification`` reads the score at the last token that is not
    ``pad_token_id``; our reward is read at the end-of-turn token that closes the response, so a
    tokenizer that pads with that very token (``load_tokenizer`` falls back to EOS, which is
    ``<|eot_id|>`` for Llama-3.x-Instruct) would move every score one token to the left.
    """
    import copy

    eot = tokenizer.convert_tokens_to_ids(end_of_turn_token(tokenizer))
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != eot:
        return tokenizer
    vocab = tokenizer.get_vocab()
    pad = next((t for t in PAD_CANDIDATES if t in vocab and vocab[t] != eot), None)
    if pad is None:
        raise ConfigError(f"the tokenizer pads with its end-of-turn token {end_of_turn_token(tokenizer)!r} and has "
                          f"none of {list(PAD_CANDIDATES)}: a 🤗 reward model would score the token before it; "
                          "add a pad token to the tokenizer")
    out = copy.deepcopy(tokenizer)
    out.pad_token = pad
    logger.info("reward model export pads with %r (the tokenizer padded with the end-of-turn token)", pad)
    return out


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
