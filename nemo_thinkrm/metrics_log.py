"""One metrics logger for every stage: console line, ``metrics.jsonl``, TensorBoard.

Only the logging rank (global rank 0) writes; every rank may call it. Each record
is one JSON object per line with a ``step`` (or ``kind`` for evals) and a wall
``time``, so a run directory can be plotted or diffed without TensorBoard.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Optional

from nemo_thinkrm.runtime.distributed import is_rank0

logger = logging.getLogger("nemo_thinkrm")


class MetricsLogger:
    """Appends step records to ``run_dir/metrics.jsonl`` and mirrors scalars to TensorBoard."""

    def __init__(self, run_dir: str | Path, total_steps: Optional[int] = None,
                 tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.total_steps = total_steps
        self.enabled = is_rank0()
        self._start = time.time()
        self._tb = None
        if self.enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._file = open(self.run_dir / "metrics.jsonl", "a", buffering=1)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
                except Exception as exc:  # tensorboard is optional at run time
                    logger.warning("TensorBoard disabled: %s", exc)

    def log(self, step: int, metrics: dict[str, Any], kind: str = "train") -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, "time": round(time.time() - self._start, 3), **metrics}
        self._file.write(json.dumps(record, default=float) + "\n")
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb.add_scalar(f"{kind}/{key}", value, step)
        logger.info(self._console_line(step, metrics, kind))

    def _console_line(self, step: int, metrics: dict[str, Any], kind: str) -> str:
        parts = [f"[{kind}] step {step}" + (f"/{self.total_steps}" if self.total_steps else "")]
        for key, value in metrics.items():
            if isinstance(value, float):
                parts.append(f"{key}={value:.4g}")
            elif isinstance(value, int):
                parts.append(f"{key}={value}")
        if self.total_steps and step > 0 and kind == "train":
            elapsed = time.time() - self._start
            eta = elapsed / step * (self.total_steps - step)
            parts.append(f"eta={eta:.0f}s")
        return " ".join(parts)

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            if self._tb is not None:
                self._tb.close()


def read_metrics(run_dir: str | Path, kind: Optional[str] = None) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if kind is None or r.get("kind") == kind]
