"""``thinkrm <stage> [--config-name NAME] [hydra overrides]`` — entry points only, no logic.

Also ``python -m nemo_thinkrm <stage> …`` under torchrun/srun. Every Hydra stage:
composes ``conf/<config-name>.yaml`` against its structured schema, validates it,
writes the resolved config to ``<run_dir>/config.yaml`` (rank 0), and calls the
stage's runner. User mistakes (``ConfigError``) print one line and exit 2.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from nemo_thinkrm.config.errors import ConfigError, InjectedFault
from nemo_thinkrm.config.stages import register_schemas
from nemo_thinkrm.runtime.run_lock import RunLock
from nemo_thinkrm.stages import STAGES, Stage

CONF_DIR = Path(os.environ.get("THINKRM_CONF_DIR", Path(__file__).resolve().parents[1] / "conf"))

USAGE = """usage: thinkrm <stage> [--config-name NAME] [key=value ...] [-m for sweeps]

stages:
{stages}

examples:
  thinkrm sft --config-name tiny_sft run_dir=runs/sft1 optim.lr=1e-4
  thinkrm sft -m optim.lr=1e-5,5e-6              # Hydra multirun sweep
  thinkrm sft -m hydra/launcher=submitit_slurm hydra.launcher.partition=gpu ...
"""


def _usage() -> str:
    rows = []
    for s in STAGES.values():
        status = "" if s.runner else f"  (not built yet: issue {s.issue})"
        rows.append(f"  {s.name:<14} {s.summary}{status}")
    return USAGE.format(stages="\n".join(rows))


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    stage = STAGES.get(name) or STAGES.get(name.replace("_", "-"))
    if stage is None:
        print(f"error: unknown stage {name!r}; choose one of: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    if stage.runner is None:
        print(f"error: stage {stage.name!r} is not built yet (issue {stage.issue}); "
              f"built stages: {', '.join(s.name for s in STAGES.values() if s.runner)}", file=sys.stderr)
        return 2
    if stage.config_name is None:
        try:
            return int(stage.load_runner()(rest) or 0)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return _run_hydra(stage, rest)


def _run_hydra(stage: Stage, overrides: list[str]) -> int:
    import hydra  # Hydra loads here, so `thinkrm --help` and non-Hydra stages start without it

    register_schemas()
    status = {"code": 0}

    @hydra.main(config_path=str(CONF_DIR), config_name=stage.config_name, version_base="1.3")
    def _app(cfg) -> None:
        status["code"] = run_stage_config(stage, cfg)

    if _rank() != 0:  # one writer per file: rank 0 keeps Hydra's cli.log and .hydra/, the others log to stdout
        overrides = [*overrides, "hydra.output_subdir=null", "~hydra.job_logging.handlers.file",
                     "hydra.job_logging.root.handlers=[console]"]
    saved = sys.argv
    sys.argv = [f"thinkrm {stage.name}", *overrides]
    try:
        _app()
    except SystemExit as exc:  # hydra exits 1 on composition errors after printing them
        return int(exc.code or 0)
    finally:
        sys.argv = saved
    return status["code"]



def run_stage_config(stage: Stage, cfg) -> int:
    """Validate a composed config, save it, run the stage. Called once per (multi)run job."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    logging.getLogger("nemo_thinkrm").setLevel(logging.INFO)
    try:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
    except ValueError:  # not under Hydra (tests call this directly)
        run_dir = Path(cfg.run_dir)
    OmegaConf.set_struct(cfg, False)
    cfg.run_dir = str(run_dir)
    try:
        obj = OmegaConf.to_object(cfg)
        obj.validate()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # one job per run directory (runtime/run_lock.py): rank 0 holds it for the whole job
    lock = RunLock(run_dir, stage.name) if _rank() == 0 else contextlib.nullcontext()
    try:
        with lock:
            if _rank() == 0:
                (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
            stage.load_runner()(obj)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except InjectedFault as exc:
        print(str(exc), file=sys.stderr)
        return InjectedFault.exit_code
    return 0


def _rank() -> int:
    """The launcher's global rank (torchrun/srun env), known before torch.distributed starts."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
