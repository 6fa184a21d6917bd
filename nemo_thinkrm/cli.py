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
import re
import sys
import warnings
from pathlib import Path
from typing import Optional, Sequence

from nemo_thinkrm.config.errors import ConfigError, InjectedFault
from nemo_thinkrm.runtime.launch import launcher_rank
from nemo_thinkrm.runtime.run_lock import RunLock
from nemo_thinkrm.config.registry import STAGES, Stage, register_schemas

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
    rows = [f"  {s.name:<14} {s.summary}" for s in map(STAGES.get, STAGES)]
    return USAGE.format(stages="\n".join(rows))


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    name = name if name in STAGES else name.replace("_", "-")
    if name not in STAGES:
        print(f"error: unknown stage {argv[0]!r}; choose one of: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    stage = STAGES.get(name)
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

    if launcher_rank() != 0:  # one writer per file: rank 0 keeps Hydra's cli.log and .hydra/, the others log to stdout
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
    lock = RunLock(run_dir, stage.name) if launcher_rank() == 0 else contextlib.nullcontext()
    try:
        with lock:
            if launcher_rank() == 0:
                (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
            stage.load_runner()(obj)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except InjectedFault as exc:
        print(str(exc), file=sys.stderr)
        return InjectedFault.exit_code
    return 0




# megatron-core warns four times at import that Transformer Engine and Apex are absent. That is the
# design on CPU (megatron's local layer spec) and on a GPU models/layer_spec.py says which spec a run
# uses, so the warning only buries our own lines. Silenced for this process and, through
# PYTHONWARNINGS, for the processes it starts (ranks, conversions, vLLM workers); not in the library,
# where the user's program decides.
QUIET_WARNINGS = ("ignore:Transformer Engine and Apex are not installed:UserWarning",)


def quiet_known_warnings() -> None:
    for spec in QUIET_WARNINGS:
        action, message, _ = spec.split(":")  # every entry is a UserWarning
        warnings.filterwarnings(action, message=re.escape(message), category=UserWarning)
    present = os.environ.get("PYTHONWARNINGS", "")
    extra = [spec for spec in QUIET_WARNINGS if spec not in present.split(",")]
    if extra:
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [present, *extra]))


def console_main() -> None:
    quiet_known_warnings()
    sys.exit(main())


if __name__ == "__main__":
    console_main()
