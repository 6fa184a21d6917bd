"""Training checkpoints: everything a trainer needs to continue *exactly* where it stopped.

Layout of ``run_dir/checkpoints/``::

    step_00000040/          a native checkpoint (context/ + weights/) whose weights/
      weights/              also holds the optimizer state (megatron distributed
      context/              optimizer, ``dp_reshardable`` sharding; or the plain one's)
      train_state.json      step, consumed samples, data position, scheduler state,
                            which optimizer saved it (a resume must use the same kind)
      rng/rank_00000.pt     python / numpy / torch / megatron-tracker RNG states per rank
      COMPLETE              written last, inside the temporary directory
    latest                  text file: name of the newest complete checkpoint
    .tmp-step_00000050/     a save in progress or interrupted (ignored, removed)

The step is read from ``train_state.json``, never parsed from a directory name.
A directory without ``COMPLETE`` (or with unreadable state) is skipped with a
warning in favour of the previous one.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import torch

from nemo_thinkrm.checkpoint.atomic import TMP_PREFIX, atomic_directory, atomic_write_text
from nemo_thinkrm.checkpoint.native import (WEIGHTS_PREFIX, is_complete_dist_checkpoint, model_sharded_state_dict,
                                            save_weights, strip_prefix, write_context)
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import ModelConfig
from nemo_thinkrm.runtime.distributed import barrier, global_rank

logger = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
LATEST = "latest"
OPTIMIZER_SHARDING = "dp_reshardable"  # the default fully_sharded_model_space fails on CPU (flattened_range)
_OPT_METADATA = {"distrib_optim_sharding_type": OPTIMIZER_SHARDING}


@dataclass
class TrainState:
    """Loop position. New fields need defaults so older checkpoints still load."""

    step: int = 0
    consumed_samples: int = 0
    epoch: int = 0
    data_state: dict = field(default_factory=dict)
    """Whatever the trainer's data iterator needs to continue (e.g. sampler generator state)."""
    scheduler: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainState":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def capture_rng_state() -> dict[str, Any]:
    import numpy as np
    from megatron.core import tensor_parallel

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "tracker": tensor_parallel.get_cuda_rng_tracker().get_states()}


def restore_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    from megatron.core import tensor_parallel

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    tensor_parallel.get_cuda_rng_tracker().set_states(state["tracker"])


class Checkpointer:
    """Saves and restores training checkpoints under ``root``; keeps the newest ``keep_last``."""

    def __init__(self, root: str | Path, keep_last: int = 2) -> None:
        self.root = Path(root)
        self.keep_last = keep_last

    # ------------------------------------------------------------------ save
    def save(self, state: TrainState, module: torch.nn.Module, optimizer, model_cfg: ModelConfig, *,
             tokenizer: Any = None, run_config: Optional[str] = None) -> Path:
        """Call on every rank. ``module`` is the unwrapped GPTModel of this rank."""
        name = f"step_{state.step:08d}"
        final = self.root / name
        if global_rank() == 0:
            self.root.mkdir(parents=True, exist_ok=True)
        barrier()
        with atomic_directory(final, overwrite=True) as tmp:
            model_sd = model_sharded_state_dict(module)
            opt_sd = optimizer.sharded_state_dict(model_sd, is_loading=False, metadata=_OPT_METADATA)
            save_weights(module, tmp / "weights", extra_sharded={"optimizer": opt_sd})
            (tmp / "rng").mkdir(exist_ok=True)
            torch.save(capture_rng_state(), tmp / "rng" / f"rank_{global_rank():05d}.pt")
            barrier()
            if global_rank() == 0:
                write_context(tmp / "context", model_cfg, tokenizer=tokenizer, run_config=run_config)
                (tmp / "train_state.json").write_text(json.dumps({**asdict(state), "optimizer": optimizer_kind(optimizer)},
                                                                 indent=2))
                (tmp / COMPLETE).write_text("ok\n")
        if global_rank() == 0:
            atomic_write_text(self.root / LATEST, name + "\n")
            self._prune()
        barrier()
        logger.info("saved checkpoint %s", final)
        return final

    def _prune(self) -> None:
        complete = self._complete_checkpoints()
        for path, _ in complete[: max(0, len(complete) - self.keep_last)]:
            shutil.rmtree(path, ignore_errors=True)
        for stale in self.root.glob(f"{TMP_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)

    # ------------------------------------------------------------------ discover
    def _complete_checkpoints(self) -> list[tuple[Path, TrainState]]:
        """(path, state) of every loadable checkpoint, oldest first; warns on broken ones."""
        found = []
        if not self.root.is_dir():
            return found
        for path in self.root.iterdir():
            if not path.is_dir() or path.name.startswith(TMP_PREFIX):
                continue
            problem = self._problem(path)
            if problem:
                logger.warning("skipping checkpoint %s: %s", path, problem)
                continue
            state = TrainState.from_dict(json.loads((path / "train_state.json").read_text()))
            found.append((path, state))
        return sorted(found, key=lambda ps: ps[1].step)

    @staticmethod
    def _problem(path: Path) -> Optional[str]:
        if not (path / COMPLETE).is_file():
            return "no COMPLETE marker (interrupted save)"
        if not is_complete_dist_checkpoint(path / "weights"):
            return "weights/metadata.json missing"
        try:
            json.loads((path / "train_state.json").read_text())
        except (OSError, ValueError) as exc:
            return f"unreadable train_state.json ({exc})"
        return None

    def latest(self) -> Optional[Path]:
        """The checkpoint to resume from: ``latest`` if it is sound, else the newest sound one."""
        complete = self._complete_checkpoints()
        if not complete:
            return None
        pointer = self.root / LATEST
        if pointer.is_file():
            named = self.root / pointer.read_text().strip()
            if any(p == named for p, _ in complete):
                # a newer complete one can exist if the pointer write was interrupted
                return max(complete, key=lambda ps: ps[1].step)[0]
            logger.warning("'latest' points to %s, which is missing or broken; using the newest sound "
                           "checkpoint instead", named)
        return complete[-1][0]

    # ------------------------------------------------------------------ load
    def load(self, path: Path, module: torch.nn.Module, optimizer) -> TrainState:
        """Restore model, optimizer and RNG state on every rank; returns the loop position."""
        from megatron.core import dist_checkpointing

        saved = json.loads((path / "train_state.json").read_text())
        kind = optimizer_kind(optimizer)
        if saved.get("optimizer", kind) != kind:
            raise ConfigError(f"{path} holds {saved['optimizer']} optimizer state but this run uses the "
                              f"{kind} optimizer (the distributed one shards over data-parallel "
                              "ranks; on CPU a single data-parallel rank uses the plain one): resume with the "
                              "layout it was saved with")
        model_sd = {k: v for k, v in model_sharded_state_dict(module).items() if "_extra_state" not in k}
        _ensure_adam_state(optimizer)
        opt_sd = optimizer.sharded_state_dict(model_sharded_state_dict(module), is_loading=True,
                                              metadata=_OPT_METADATA)
        loaded = dist_checkpointing.load({**model_sd, "optimizer": opt_sd}, str(path / "weights"))
        opt_state = loaded.pop("optimizer")
        result = module.load_state_dict(strip_prefix(loaded, WEIGHTS_PREFIX), strict=False)
        missing = [k for k in result.missing_keys if "_extra_state" not in k]
        if missing:
            raise RuntimeError(f"checkpoint {path} lacks model tensors {missing[:5]}")
        with torch.no_grad():  # fp32 main params are views of leaf params that require grad
            optimizer.load_state_dict(opt_state)
        _restore_adam_steps(optimizer)
        rng_file = path / "rng" / f"rank_{global_rank():05d}.pt"
        if rng_file.is_file():
            restore_rng_state(torch.load(rng_file, weights_only=False))
        else:
            logger.warning("%s has no RNG state for rank %d (different world size?); "
                           "continuing with fresh RNG streams", path, global_rank())
        state = TrainState.from_dict(saved)
        logger.info("resumed from %s (step %d)", path, state.step)
        return state


def optimizer_kind(optimizer) -> str:
    """``distributed`` (megatron's DistributedOptimizer: state in flat data-parallel shards) or
    ``plain``; the two lay out their checkpointed state differently, so a resume must match."""
    from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer

    subs = getattr(optimizer, "chained_optimizers", [optimizer])
    return "distributed" if any(isinstance(o, DistributedOptimizer) for o in subs) else "plain"


def _keeps_step_per_parameter(inner) -> bool:
    """torch's Adam/AdamW keep a ``step`` per parameter; Transformer Engine's ``FusedAdam`` (what megatron
    uses whenever TE imports) and apex's keep one per param group, and TE's ``state_dict()`` unscales every
    per-parameter key through ``get_unscaled_state``, which raises ``KeyError`` on a ``step`` there
    (``name_to_dtype_map`` knows exp_avg, exp_avg_sq and master_param only)."""
    return isinstance(inner, (torch.optim.Adam, torch.optim.AdamW))


def _ensure_adam_state(optimizer) -> None:
    """Give a fresh torch Adam(W) the state tensors a loaded checkpoint will overwrite.

    megatron's optimizer ``state_dict()`` reads each parameter's ``step`` (without
    apex/TE fused Adam it wraps torch's AdamW, whose state is empty until the first
    step), so a resume before any step would fail. Zeros are placeholders only:
    ``load_state_dict`` replaces every one of them. Fused optimizers are left alone: megatron
    builds their placeholders itself.
    """
    for sub in getattr(optimizer, "chained_optimizers", [optimizer]):
        inner = sub.optimizer
        if not _keeps_step_per_parameter(inner):
            continue
        for group in inner.param_groups:
            for p in group["params"]:
                st = inner.state[p]
                if not st:
                    st["step"] = torch.tensor(0.0)
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)


def _restore_adam_steps(optimizer) -> None:
    """Set every parameter's own Adam ``step`` tensor from the loaded param-group step.

    Without apex/TE (CPU), megatron 0.16.1's distributed optimizer saves torch
    AdamW's per-parameter ``step`` as a param-group value, but on load leaves the
    per-parameter state untouched (here: the placeholders of ``_ensure_adam_state``)
    and, when it does set it, shares one tensor between all parameters, which
    AdamW then increments once per parameter. Either way the bias correction after
    a resume was wrong — seen as a loss divergence from the second resumed step. Fused
    optimizers keep the group's step, which ``load_state_dict`` restored.
    """
    for sub in getattr(optimizer, "chained_optimizers", [optimizer]):
        inner = sub.optimizer
        if not _keeps_step_per_parameter(inner):
            continue
        for group in inner.param_groups:
            step = group.get("step")
            if step is None:
                continue
            for p in group["params"]:
                if p in inner.state:
                    inner.state[p]["step"] = torch.tensor(float(step))
