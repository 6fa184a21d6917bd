"""Resuming a run whose settings changed, and a ``config.yaml`` that says how the run really runs.

A user re-runs a run directory to continue it, often with an edited command line: a new
``optim.lr``, a longer ``train_iters``. megatron's ``OptimizerParamScheduler.load_state_dict``
would silently keep the checkpoint's learning-rate schedule and ``optimizer.load_state_dict``
the checkpoint's per-group settings (max/min LR, Adam betas and eps), while ``config.yaml``
showed the new values. Here the command line wins: the schedule and the group settings come
from the current config, at the checkpoint's step, and every setting that differs from the checkpoint's run config is
logged by key. The one change that cannot be honoured — another architecture — is refused
with a one-line error naming the keys, before megatron fails on a tensor shape.

``config.yaml`` is written again once a trainer has resolved what the command line left open
(the architecture read from ``model.hf_path``, ``train_iters`` from ``num_epochs``), so it
holds the values the run uses, not the ones it was asked for.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Optional

import yaml

from nemo_thinkrm.checkpoint.native import read_model_config
from nemo_thinkrm.checkpoint.training_state import Checkpointer, TrainState
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import ModelConfig
from nemo_thinkrm.runtime.distributed import is_rank0

logger = logging.getLogger(__name__)

RUN_CONFIG = "config.yaml"
# ModelConfig fields that may differ between a checkpoint and the run resuming it
NOT_ARCHITECTURE = frozenset({"hf_path", "tokenizer", "init_method_std"})
# run-config keys whose change is not worth a line (where the run lives, how it resumes)
QUIET_KEYS = ("run_dir", "checkpoint.resume", "checkpoint.fail_after_step")


def config_yaml(cfg: Any) -> str:
    """The resolved run config as YAML (what ``config.yaml`` and checkpoints store)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def write_run_config(cfg: Any) -> str:
    """Rewrite ``run_dir/config.yaml`` with the resolved values (rank 0); returns the YAML."""
    text = config_yaml(cfg)
    if is_rank0():
        run_dir = Path(cfg.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / RUN_CONFIG).write_text(text)
    return text


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def config_changes(old_yaml: str, new_yaml: str) -> list[tuple[str, Any, Any]]:
    """(key, old, new) for every leaf that differs between two run configs, keys sorted."""
    old, new = _flatten(yaml.safe_load(old_yaml) or {}), _flatten(yaml.safe_load(new_yaml) or {})
    return [(k, old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k) and not k.startswith(QUIET_KEYS)]


def architecture_changes(saved: ModelConfig, current: ModelConfig) -> list[tuple[str, Any, Any]]:
    a, b = asdict(saved), asdict(current)
    return [(f"model.{f.name}", a[f.name], b[f.name]) for f in fields(ModelConfig)
            if f.name not in NOT_ARCHITECTURE and a[f.name] != b[f.name]]


_RUNTIME_GROUP_KEYS = frozenset({"params", "lr", "weight_decay", "step"})  # set by the scheduler / the steps


def _group_settings(optimizer) -> list[list[dict]]:
    """Each inner param group's settings (max_lr, min_lr, betas, eps, wd_mult, ...), as built from
    the current config; ``load_state_dict`` overwrites them with the checkpoint's."""
    return [[{k: v for k, v in g.items() if k not in _RUNTIME_GROUP_KEYS} for g in sub.optimizer.param_groups]
            for sub in getattr(optimizer, "chained_optimizers", [optimizer])]


def _restore_group_settings(optimizer, settings: list[list[dict]]) -> None:
    for sub, groups in zip(getattr(optimizer, "chained_optimizers", [optimizer]), settings):
        for group, values in zip(sub.optimizer.param_groups, groups):
            group.update(values)


def resume(ckpt: Checkpointer, module, optimizer, scheduler, cfg: Any, run_config: str) -> Optional[TrainState]:
    """Load ``latest`` (if resuming and one exists) with the current config's settings; None otherwise."""
    if not cfg.checkpoint.resume:
        return None
    path = ckpt.latest()
    if path is None:
        return None
    changed = architecture_changes(read_model_config(path), cfg.model)
    if changed:
        raise ConfigError(f"{path} holds another architecture than this run asks for ("
                          + "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, a, b in changed)
                          + "); resume needs the same one — use a new run_dir or checkpoint.resume=false")
    settings = _group_settings(optimizer)
    state = ckpt.load(path, module, optimizer)
    _restore_group_settings(optimizer, settings)
    scheduler.override_opt_param_scheduler = True  # the current config's schedule, at the saved step
    scheduler.load_state_dict(state.scheduler)
    saved_config = path / "context" / "run_config.yaml"
    if saved_config.is_file():
        changes = config_changes(saved_config.read_text(), run_config)
        if changes:
            logger.warning("resuming %s with changed settings (the new values apply from step %d): %s", path,
                           state.step + 1, "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changes))
    return state
