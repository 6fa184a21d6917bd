"""Set-up every supervised trainer starts with (SFT, reward models)."""

from __future__ import annotations

from typing import Any

from nemo_thinkrm.checkpoint.start import start_model_and_tokenizer


def resolve_model_and_tokenizer(cfg: Any) -> Any:
    """Take the architecture and the tokenizer from ``model.hf_path`` when it names a checkpoint
    (keeping the run's dtype; a configured tokenizer must be the checkpoint's own,
    ``checkpoint/start.py``), check the vocabulary fits; ``cfg.model`` records what was used."""
    cfg.model, tokenizer = start_model_and_tokenizer(cfg.model, cfg.run_dir)
    return tokenizer
