"""SFT validation scores every held-out row: a validation set that is not a multiple of the
micro-batch size is filled with loss-free rows (``data/packing.py: fill_to_multiple``). Before,
2 rows at micro-batch size 4 logged ``val_loss=NaN`` at every interval and 6 rows were scored as 4."""

from __future__ import annotations

import math

import pytest

from nemo_thinkrm.metrics_log import read_metrics
from tests.helpers import run_cli

pytestmark = pytest.mark.integration


def _val_loss(run_dir, micro_batch_size: int) -> float:
    proc = run_cli("sft", "--config-name", "tiny_sft", f"run_dir={run_dir}", "data.train_path=builtin:arithmetic:40",
                   "data.val_fraction=0.05", "train_iters=1", "eval_interval=1", "seq_length=512",
                   "global_batch_size=8", f"micro_batch_size={micro_batch_size}", "checkpoint.save_interval=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_metrics(run_dir, "val")[-1]["val_loss"]


def test_a_validation_set_smaller_than_a_micro_batch_is_scored(tmp_path):
    two_rows_in_batches_of_4 = _val_loss(tmp_path / "mbs4", 4)
    one_row_per_batch = _val_loss(tmp_path / "mbs1", 1)  # the reference: no filling needed
    assert math.isfinite(two_rows_in_batches_of_4)
    assert two_rows_in_batches_of_4 == pytest.approx(one_row_per_batch, rel=1e-4)
