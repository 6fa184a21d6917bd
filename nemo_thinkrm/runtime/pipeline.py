"""Recipes made of stages: each step is the real ``thinkrm <stage>`` command, run once as a child process.

The quickstart and ``thinkrm self-train`` chain stages this way rather than calling their runners in
process: every step is exactly what a user runs (its own config.yaml, metrics and log under the
recipe's run directory), a step's memory is returned when it exits, and a training step can be
launched on several processes (``launch``, e.g. ``torchrun --nproc-per-node 8``). A step that
finished leaves a done-marker, so re-running the recipe after a kill resumes at the first step not
done; the interrupted step itself resumes from its own run directory (checkpoints, predictions).
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from nemo_thinkrm.config.errors import ConfigError

logger = logging.getLogger("nemo_thinkrm.pipeline")


class StageFailed(ConfigError):
    """A pipeline stage exited non-zero; the message names its log."""


@dataclass
class Pipeline:
    """``cfg`` is the recipe's config; ``overrides`` (stage key → extra Hydra overrides) and ``launch``
    (stage kind → command prefix) are read from it when it has them."""

    cfg: Any
    root: Path
    timings: dict[str, float] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def done(self, key: str) -> bool:
        return self.path(".done", key).is_file()

    def stage(self, key: str, argv: list[str], overrides_key: Optional[str] = None) -> None:
        """Run ``thinkrm <argv>`` once (skipped when its done-marker exists), logging to logs/<key>.log;
        ``overrides_key`` names the entry of ``cfg.overrides`` (and of ``cfg.launch``) it takes, default ``key``."""
        marker = self.path(".done", key)
        if marker.is_file():
            logger.info("[%s] already done (delete %s to redo)", key, marker)
            self.timings[key] = float(marker.read_text() or 0)
            return
        which = overrides_key or key
        argv = argv + list(_entry(getattr(self.cfg, "overrides", {}), which) or [])
        prefix = shlex.split(str(_entry(getattr(self.cfg, "launch", {}), which) or "")) or [sys.executable]
        log = self.path("logs", f"{key}.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        logger.info("[%s] thinkrm %s", key, " ".join(argv[:1] + argv[3:5]) + " …")
        t0 = time.time()
        with open(log, "w") as out:
            rc = subprocess.run([*prefix, "-m", "nemo_thinkrm", *argv], stdout=out,
                                stderr=subprocess.STDOUT).returncode
        elapsed = time.time() - t0
        if rc != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise StageFailed(f"stage {key!r} failed (exit {rc}); full log: {log}\n{tail}")
        self.mark_done(key, elapsed)
        logger.info("[%s] done in %.0f s", key, elapsed)

    def mark_done(self, key: str, elapsed: float) -> None:
        """Record a finished step (also for steps a recipe runs in process)."""
        marker = self.path(".done", key)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{elapsed:.1f}")
        self.timings[key] = elapsed


def _entry(table: Mapping[str, Any], key: str) -> Sequence[str] | str | None:
    return table.get(key) if table else None
