"""The GPU smoke plan (tools/gpu_smoke.py) rehearsed on CPU, so the script a lent GPU will run
has run end to end before: every step passes and the JSON report says what ran."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, clean_env

pytestmark = pytest.mark.slow


def test_gpu_smoke_plan_rehearsed_on_cpu(tmp_path):
    proc = subprocess.run([sys.executable, "tools/gpu_smoke.py", "--rehearse-only", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env=clean_env(), cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_smoke.json").read_text())
    assert report["ok"] is True and report["gpu"] is False
    assert [report[s]["ok"] for s in ("env", "parity", "sft", "resume", "grpo")] == [True] * 5
    assert report["sft"]["steps"] == [1, 2, 3] and report["grpo"]["steps"] == [1, 2]
    parity = json.loads((tmp_path / "parity.json").read_text())
    assert parity["local"]["max_abs_diff"] <= 1e-3 and parity["local"]["bf16_finite"]


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
