"""Set-up every supervised trainer starts with (SFT, reward models)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nemo_thinkrm.checkpoint.convert import source_architecture
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.models.tokenizer import load_tokenizer


def resolve_model_and_tokenizer(cfg: Any) -> Any:
    """Take the architecture from ``model.hf_path`` when it names a checkpoint (keeping the run's
    dtype and tokenizer settings), load the tokenizer and check it fits the vocabulary."""
    source_cfg = source_architecture(cfg.model.hf_path)
    if source_cfg is not None:
        cfg.model = replace(source_cfg, params_dtype=cfg.model.params_dtype, tokenizer=cfg.model.tokenizer,
                            hf_path=cfg.model.hf_path)
    tokenizer = load_tokenizer(cfg.model.tokenizer)
    if len(tokenizer) > cfg.model.vocab_size:
        raise ConfigError(f"tokenizer has {len(tokenizer)} tokens but model.vocab_size is {cfg.model.vocab_size}")
    return tokenizer
