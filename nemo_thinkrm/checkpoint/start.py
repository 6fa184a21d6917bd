"""What a run starts from: the architecture *and the tokenizer* stored with ``model.hf_path``.

A checkpoint's own tokenizer is the truth. Before this module a recipe's tokenizer won
silently: ``thinkrm sft --config-name tiny_sft model.hf_path=<SmolLM2>`` trained the real
model on the 512-token tiny BPE's ids (first loss 6.60 where its own tokenizer gives 1.45).
Now, when the start checkpoint (🤗 directory, native checkpoint, training run, ``.nemo``)
carries a tokenizer:

* ``model.tokenizer.name`` unset (null): the checkpoint's tokenizer is used;
* set, and the same tokenizer (vocabulary, special tokens, BOS behaviour, chat template):
  used, whatever path it was loaded from;
* set and different: a ``ConfigError`` naming both and what differs, unless
  ``model.tokenizer.override_checkpoint=true`` says it is on purpose (logged).

The config's ``model.tokenizer.name`` is then set to where the tokenizer was read, so the
run's ``config.yaml`` records the tokenizer the run used.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

from nemo_thinkrm.checkpoint.convert import Source, open_source
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import ModelConfig, TokenizerConfig
from nemo_thinkrm.models.tokenizer import load_tokenizer
from nemo_thinkrm.runtime.distributed import is_rank0

logger = logging.getLogger(__name__)

PROBE = "Hello <think> 12 + 7"
"""Encoded with special tokens on both sides: catches a tokenizer that adds BOS where the other does not."""


def tokenizer_traits(tok: Any) -> dict[str, Any]:
    """What must agree for two tokenizers to give a model the same inputs."""
    with_specials = tok(PROBE)["input_ids"]
    plain = set(tok(PROBE, add_special_tokens=False)["input_ids"])
    return {
        "vocabulary": tok.get_vocab(),
        "special tokens": {k: str(v) for k, v in sorted(tok.special_tokens_map.items())},
        "tokens added on encode": tok.convert_ids_to_tokens([i for i in with_specials if i not in plain]),
        "chat template": tok.chat_template,
    }


def tokenizer_differences(configured: Any, own: Any) -> list[str]:
    """Human-readable differences between two tokenizers (empty: the same tokenizer)."""
    a, b = tokenizer_traits(configured), tokenizer_traits(own)
    out = []
    for key in a:
        if a[key] == b[key]:
            continue
        if key == "vocabulary":
            out.append(f"vocabulary {len(a[key])} vs {len(b[key])} entries"
                       + ("" if len(a[key]) != len(b[key]) else ", other ids"))
        elif key == "special tokens":
            names = sorted(k for k in set(a[key]) | set(b[key]) if a[key].get(k) != b[key].get(k))
            out.append("special tokens " + ", ".join(f"{k} {a[key].get(k)!r} vs {b[key].get(k)!r}" for k in names))
        elif key == "chat template":
            out.append("chat template differs" if a[key] and b[key] else
                       f"chat template {'missing' if not a[key] else 'present'} vs "
                       f"{'missing' if not b[key] else 'present'}")
        else:
            out.append(f"{key} {a[key]} vs {b[key]}")
    return out


def _checkpoint_tokenizer(src: Source) -> Optional[Any]:
    if src.tokenizer_dir is None:
        return None
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(src.tokenizer_dir))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _persistent_tokenizer_dir(src: Source, tok: Any, run_dir: Optional[Path]) -> str:
    """A directory holding the checkpoint's tokenizer after this run starts (for ``config.yaml``).

    🤗 and native checkpoints keep it in place; a ``.nemo`` is read from a temporary extraction,
    so its tokenizer is saved into the run directory."""
    if src.kind not in ("nemo1-dist", "nemo1-per-rank"):
        return str(src.tokenizer_dir)
    if run_dir is None:
        return str(src.path)
    target = Path(run_dir) / "start_tokenizer"
    if is_rank0():
        tok.save_pretrained(str(target))
    return str(target)


def resolve_tokenizer(tok_cfg: TokenizerConfig, src: Optional[Source], run_dir: Optional[Path] = None
                      ) -> tuple[Any, TokenizerConfig]:
    """(tokenizer, the TokenizerConfig that names it) for a run starting from ``src`` (or from scratch)."""
    own = _checkpoint_tokenizer(src) if src is not None else None
    if own is None:
        if not tok_cfg.name:
            where = f"{src.path} carries no tokenizer" if src is not None else "no start checkpoint (model.hf_path)"
            raise ConfigError(f"model.tokenizer.name is not set and {where}: name a tokenizer directory or one of "
                              "the bundled names (tiny_bpe, qwen3, qwen2_5, deepseek_r1_distill_llama)")
        return load_tokenizer(tok_cfg), tok_cfg
    if not tok_cfg.name:
        if own.chat_template is None:
            raise ConfigError(f"the tokenizer stored with {src.path} has no chat template; set model.tokenizer.name "
                              "to a tokenizer of the same vocabulary that has one, with "
                              "model.tokenizer.override_checkpoint=true")
        name = _persistent_tokenizer_dir(src, own, run_dir)
        logger.info("tokenizer: the one stored with %s (%d tokens)", src.path, len(own))
        return own, replace(tok_cfg, name=name)
    configured = load_tokenizer(tok_cfg)
    diffs = tokenizer_differences(configured, own)
    if diffs and not tok_cfg.override_checkpoint:
        raise ConfigError(f"model.tokenizer.name={tok_cfg.name!r} is not the tokenizer stored with {src.path} "
                          f"({'; '.join(diffs)}): drop it (model.tokenizer.name=null) to use the checkpoint's own, "
                          "or set model.tokenizer.override_checkpoint=true to use it on purpose")
    if diffs:
        logger.warning("model.tokenizer.override_checkpoint=true: using %s, not the tokenizer stored with %s (%s)",
                       tok_cfg.name, src.path, "; ".join(diffs))
    return configured, tok_cfg


def check_vocabulary_fits(tokenizer: Any, model: ModelConfig) -> None:
    if len(tokenizer) > model.vocab_size:
        raise ConfigError(f"the tokenizer ({model.tokenizer.name}) has {len(tokenizer)} tokens but the model's "
                          f"vocabulary has {model.vocab_size} rows")


def start_model_and_tokenizer(model: ModelConfig, run_dir: Optional[str | Path] = None
                              ) -> tuple[ModelConfig, Any]:
    """The run's ModelConfig (architecture from ``model.hf_path`` when given, keeping the run's dtype)
    and its tokenizer, checked against the checkpoint's own and against the vocabulary."""
    run_dir = Path(run_dir) if run_dir is not None else None
    if not model.hf_path:
        tokenizer, _ = resolve_tokenizer(model.tokenizer, None)
        check_vocabulary_fits(tokenizer, model)
        return model, tokenizer
    with open_source(model.hf_path) as src:
        tokenizer, tok_cfg = resolve_tokenizer(model.tokenizer, src, run_dir)
        resolved = replace(src.cfg, params_dtype=model.params_dtype, tokenizer=tok_cfg, hf_path=model.hf_path)
    check_vocabulary_fits(tokenizer, resolved)
    return resolved, tokenizer


def tokenizer_for(tok_cfg: TokenizerConfig, checkpoint: Optional[str | Path], run_dir: Optional[Path] = None
                  ) -> tuple[Any, TokenizerConfig]:
    """The tokenizer for a model read from ``checkpoint`` (a path that may not be a checkpoint at all,
    e.g. a served model's name: then the configured tokenizer)."""
    if checkpoint is None or not Path(checkpoint).exists():
        return resolve_tokenizer(tok_cfg, None)
    path = Path(checkpoint)
    if path.is_dir() and (path / "tokenizer_config.json").is_file() and not (path / "config.json").is_file():
        # a tokenizer directory standing for the model (e.g. the scripted teacher's)
        return resolve_tokenizer(tok_cfg, Source("tokenizer", path, None, path, None), run_dir)
    with open_source(checkpoint) as src:
        return resolve_tokenizer(tok_cfg, src, run_dir)
