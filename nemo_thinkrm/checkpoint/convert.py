"""Conversions between 🤗, native (NeMo 2.0 layout) and NeMo 1.x checkpoints, and their check.

Every reader is a ``Source``: it knows the architecture and can fill a megatron
model of *any* TP/PP layout. Every conversion is "open source → build model →
load → write target", so each format is read and written in exactly one place.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch

from nemo_thinkrm.checkpoint import native, nemo1
from nemo_thinkrm.checkpoint.hf_export import export_hf
from nemo_thinkrm.checkpoint.training_state import LATEST, Checkpointer
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import ModelConfig
from nemo_thinkrm.config.parallel import ParallelConfig
from nemo_thinkrm.models.builder import build_gpt_model
from nemo_thinkrm.models.hf_io import HFCheckpointReader
from nemo_thinkrm.models.hf_mapping import load_full_tensors_into_megatron
from nemo_thinkrm.models.loading import load_hf_weights, model_config_for_hf_dir
from nemo_thinkrm.runtime.distributed import barrier, init_distributed, is_rank0

logger = logging.getLogger(__name__)


@dataclass
class Source:
    """A checkpoint we can read: its architecture, tokenizer, and a loader for any layout."""

    kind: str
    path: Path
    cfg: ModelConfig
    tokenizer_dir: Optional[Path]
    load_into: Callable[[torch.nn.Module, ModelConfig], None]
    """Fill this rank's module (built from ``cfg`` with any dtype) with the weights."""


def _resolve_training_dir(p: Path) -> Path:
    """A run directory or its checkpoints/ folder → the checkpoint to read."""
    if (p / "checkpoints").is_dir():
        p = p / "checkpoints"
    if (p / LATEST).is_file() or any(c.name.startswith("step_") for c in p.glob("step_*")):
        latest = Checkpointer(p).latest()
        if latest is None:
            raise ConfigError(f"{p} has no complete training checkpoint")
        return latest
    return p


@contextlib.contextmanager
def open_source(path: str | os.PathLike) -> Iterator[Source]:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p} does not exist")
    if p.is_dir():
        p = _resolve_training_dir(p)
    if native.is_native_checkpoint(p):
        yield Source("native", p, native.read_model_config(p), native.native_tokenizer_dir(p),
                     lambda m, cfg: native.load_native(m, p))
    elif nemo1.is_nemo1_file(p):
        with nemo1.extracted(p) as root:
            cfg = nemo1.model_config_from_nemo1(nemo1.read_nemo1_config(root))
            tok = root / "tokenizer" if (root / "tokenizer").is_dir() else None
            if (root / "model_weights").is_dir():
                rows = nemo1.nemo1_vocab_rows(root)
                if cfg.vocab_size <= 1:
                    cfg.vocab_size = rows
                cfg.validate()
                yield Source("nemo1-dist", p, cfg, tok,
                             lambda m, c: native.load_weights(m, root / "model_weights", prefix=nemo1.NEMO1_PREFIX))
            else:
                if cfg.vocab_size <= 1:
                    cfg.vocab_size = nemo1.PerRankSource(root, cfg).padded_vocab_rows()
                cfg.validate()
                src = nemo1.PerRankSource(root, cfg)
                yield Source("nemo1-per-rank", p, cfg, tok, lambda m, c: _load_full(m, c, src.full))
    elif (p / "config.json").is_file():
        cfg = model_config_for_hf_dir(p)  # refuses unsupported architectures before touching weights
        reader = HFCheckpointReader(p)
        tok = p if (p / "tokenizer_config.json").is_file() else None
        yield Source("hf", p, cfg, tok, lambda m, c: load_hf_weights(m, c, p, reader=reader, progress=is_rank0()))
    else:
        raise ConfigError(f"{p} is not a 🤗 directory, a native checkpoint, a training run or a .nemo file")


def _load_full(module: torch.nn.Module, cfg: ModelConfig, get_full) -> None:
    from megatron.core import parallel_state as ps

    load_full_tensors_into_megatron(module, cfg, get_full, ps.get_tensor_model_parallel_rank(),
                                    ps.get_tensor_model_parallel_world_size(),
                                    ps.get_pipeline_model_parallel_rank(),
                                    ps.get_pipeline_model_parallel_world_size(), progress=is_rank0())


def _single_process_model(cfg: ModelConfig) -> torch.nn.Module:
    init_distributed(ParallelConfig(), cfg)
    from megatron.core import parallel_state as ps

    if ps.get_tensor_model_parallel_world_size() * ps.get_pipeline_model_parallel_world_size() != 1:
        raise ConfigError("conversions run in one process (TP=PP=1); use verify for other layouts")
    return build_gpt_model(cfg, ParallelConfig(), backend="local")


def checkpoint_tokenizer(tok_dir: Optional[Path]):
    """The 🤗 tokenizer stored with a checkpoint, or None (a checkpoint without one still converts)."""
    if tok_dir is None:
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(tok_dir))
    except Exception as exc:  # a checkpoint without a loadable tokenizer still converts
        logger.warning("tokenizer in %s not loadable (%s); output will have none", tok_dir, exc)
        return None


def _load_for_conversion(src: Source, dtype: Optional[str]) -> tuple[ModelConfig, torch.nn.Module]:
    cfg = replace(src.cfg, params_dtype=dtype or src.cfg.params_dtype)
    module = _single_process_model(cfg)
    src.load_into(module, cfg)
    return cfg, module


def to_native(src_path: str | Path, out: str | Path, dtype: Optional[str] = None, overwrite: bool = False) -> Path:
    """🤗 / .nemo 1.x / native → native checkpoint."""
    with open_source(src_path) as src:
        cfg, module = _load_for_conversion(src, dtype)
        return native.save_native(module, out, cfg, tokenizer=checkpoint_tokenizer(src.tokenizer_dir),
                                  overwrite=overwrite)


def to_hf(src_path: str | Path, out: str | Path, dtype: Optional[str] = None, overwrite: bool = False) -> Path:
    """native / training run / .nemo 1.x / 🤗 → 🤗 directory."""
    with open_source(src_path) as src:
        cfg, module = _load_for_conversion(src, dtype)
        return export_hf(module, cfg, out, dtype=cfg.params_dtype,
                         tokenizer=checkpoint_tokenizer(src.tokenizer_dir),
                         overwrite=overwrite, progress=is_rank0())


def to_nemo1(src_path: str | Path, out: str | Path, dtype: Optional[str] = None, overwrite: bool = False) -> Path:
    """any source → NeMo 1.x ``.nemo`` (dist-checkpoint weights, ``model.`` prefix)."""
    import tempfile

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists")
    with open_source(src_path) as src:
        cfg, module = _load_for_conversion(src, dtype)
        with tempfile.TemporaryDirectory(prefix="nemo1-out-") as tmp:
            native.save_weights(module, Path(tmp) / "model_weights", prefix=nemo1.NEMO1_PREFIX)
            nemo1.write_nemo1(out, cfg, Path(tmp) / "model_weights", src.tokenizer_dir)
    return out


def hf_dir_for(path: str | Path, target: str | Path) -> Path:
    """A 🤗 directory for engines that load only 🤗 (vLLM, transformers): ``path`` itself when it
    is one, else ``path`` converted once into ``target`` (kept for the next run).

    Inside a torch.distributed job the conversion runs in a child process of its own: a conversion
    builds a one-process (TP = PP = 1) model, which the job's already initialised layout (say TP = 2)
    cannot give it (``thinkrm grpo`` at TP 2 from an SFT run directory failed here, then gloo's
    "Connection closed by peer"). The child sees no GPU, so it never competes with the trainer's memory."""
    p, target = Path(path), Path(target)
    if (p / "config.json").is_file():
        return p
    if not (target / "config.json").is_file():
        logger.info("converting %s to 🤗 format for the engine → %s", p, target)
        if torch.distributed.is_initialized():
            _convert_in_child(p, target)
        else:
            to_hf(p, target, overwrite=True)
    return target


def _convert_in_child(src: Path, target: Path) -> None:
    import subprocess
    import sys

    from nemo_thinkrm.runtime.launch import without_dist_env

    env = {**without_dist_env(), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-m", "nemo_thinkrm", "convert", "nemo-to-hf", "--nemo", str(src),
                           "--out", str(target), "--overwrite"], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"converting {src} to 🤗 format for the engine failed: {last}")


def shared_hf_dir(path: str | Path, target: str | Path) -> Path:
    """``hf_dir_for`` in a distributed job: rank 0 converts (once), every rank gets the directory."""
    if is_rank0():
        hf_dir_for(path, target)
    barrier()
    return hf_dir_for(path, target)


def load_initial_weights(module: torch.nn.Module, path: str, cfg: ModelConfig) -> None:
    """Fill this rank's shard of ``module`` from a start checkpoint of any format."""
    with open_source(path) as src:
        logger.info("initial weights: %s (%s)", src.path, src.kind)
        src.load_into(module, cfg)
