"""The GPU smoke plan (tools/gpu_smoke.py) rehearsed on CPU, so the script a lent GPU will run
has run end to end before: every step passes and the JSON report says what ran."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO, clean_env

pytestmark = pytest.mark.slow


def test_gpu_smoke_plan_rehearsed(tmp_path):
    """Also: what an earlier run left in the output folder is not inherited (an earlier run's SFT
    directory used to be resumed, so the SFT step logged 4 steps instead of 3 and failed)."""
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "metrics.jsonl").write_text('{"kind": "train", "step": 1, "loss": 1.0}\n')
    (tmp_path / "gpu_smoke.json").write_text("{}")
    proc = subprocess.run([sys.executable, "tools/gpu_smoke.py", "--rehearse-only", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env=clean_env(), cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_smoke.json").read_text())
    assert report["ok"] is True and report["gpu"] is False
    steps = ("env", "parity", "sft", "resume", "grpo", "big", "paths")
    assert [report[s]["ok"] for s in steps] == [True] * len(steps)
    assert report["sft"]["steps"] == [1, 2, 3] and report["grpo"]["steps"] == [1, 2]
    parity = json.loads((tmp_path / "parity.json").read_text())
    assert parity["local"]["max_abs_diff"] <= 1e-3 and parity["local"]["bf16_finite"]
    big, paths = report["big"], report["paths"]
    assert big["big_tokens"] == 1024 and 0 < big["big_entropy_mean"] <= 11.77 and big["big_estimate_gb"] > 0
    assert paths["rope_tokens"] > 8192 and paths["rope_max_abs_diff"] <= 1e-3 and paths["refit_max_abs_diff"] == 0
    assert paths["offload_back_on_host"] and paths["offload_logprob_max_abs_diff"] <= 1e-6


def test_dry_run_names_missing_wheels(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import gpu_smoke
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(gpu_smoke, "WHEELS", tmp_path / "none")
    problems = gpu_smoke.check_wheels()
    assert problems and "megatron-core" in problems[0] and "--fetch-wheels" in problems[0]
    assert gpu_smoke.tree_bytes() < gpu_smoke.TREE_LIMIT_BYTES
