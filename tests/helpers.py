"""Every helper the tests share (paths, launching the CLI and torchrun, tiny-model training), one module for
in-process tests and the 2-process torchrun workers; fixtures live in ``conftest.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nemo_thinkrm.algorithms.lm_loss import masked_token_loss
from nemo_thinkrm.config.model import ModelConfig
from nemo_thinkrm.config.optim import OptimConfig
from nemo_thinkrm.config.parallel import ParallelConfig
from nemo_thinkrm.runtime.launch import free_port, without_dist_env

REPO = Path(__file__).resolve().parents[1]
# JudgeBench's released files, where a checkout keeps a copy (THINKRM_JUDGEBENCH, else ../shared beside
# the repository); tests that need them skip without.
JUDGEBENCH = Path(os.environ.get("THINKRM_JUDGEBENCH", REPO.parent / "shared" / "data" / "judgebench"))
needs_judgebench = pytest.mark.skipif(not JUDGEBENCH.is_dir(), reason=f"JudgeBench's files ({JUDGEBENCH}) absent")

# The families/variants every parity test covers: (family, tied, kwargs for tiny_model_config).
# qwen2 uses 1 KV head so TP=2 exercises megatron's "KV groups < TP" path;
# llama uses non-default llama3 rope values so the frequency override is exercised.
VARIANTS = {
    "llama": dict(family="llama", tied=False, llama3_rope=True),
    "llama_tied": dict(family="llama", tied=True),
    "qwen2": dict(family="qwen2", tied=False, kv_heads=1),
    "qwen3": dict(family="qwen3", tied=True, head_dim=32),
    "qwen3_untied": dict(family="qwen3", tied=False, head_dim=32),
}


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without torch.distributed rendezvous variables."""
    env = without_dist_env()
    env["PYTHONPATH"] = f"{REPO}:{os.environ.get('PYTHONPATH', '')}"
    env.update(extra)
    return env


def run_torchrun(script: Path | str, *args: str, nproc: int = 2, timeout: int = 600,
                 check: bool = True) -> subprocess.CompletedProcess:
    """Launch ``script`` (a path, or "-m module") on ``nproc`` gloo processes; fail the
    test with its output on error unless ``check`` is False."""
    target = script.split() if isinstance(script, str) else [str(script)]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
           f"--master-port={free_port()}", *target, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=clean_env(OMP_NUM_THREADS="1"),
                          cwd=REPO)
    if check and proc.returncode != 0:
        pytest.fail(f"torchrun {' '.join(target)} {' '.join(args)} failed ({proc.returncode}):\n"
                    f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nemo_thinkrm", *args], capture_output=True, text=True,
                          timeout=timeout, env=clean_env(), cwd=cwd or REPO)




def fixed_batches(cfg: ModelConfig, step: int, n_micro: int = 2, mb: int = 2, seq: int = 24
                  ) -> list[dict[str, torch.Tensor]]:
    """Deterministic micro-batches for a step; the first 5 positions are prompt (no loss)."""
    g = torch.Generator().manual_seed(1000 + step)
    out = []
    for _ in range(n_micro):
        ids = torch.randint(0, cfg.vocab_size, (mb, seq + 1), generator=g)
        mask = torch.ones(mb, seq)
        mask[:, :5] = 0
        out.append({"input_ids": ids[:, :-1], "labels": ids[:, 1:], "loss_mask": mask})
    return out


def train_losses(cfg: ModelConfig, hf_dir, par: ParallelConfig, steps: int = 5,
                 dp_rank: int = 0, dp_size: int = 1) -> list[float]:
    """Per-step mean response loss of ``steps`` Adam steps from a 🤗 start (lr 1e-3).

    With DP, each rank takes its share of the same global micro-batches.
    """
    from nemo_thinkrm.models.loading import load_hf_weights
    from nemo_thinkrm.training.engine import (build_engine_model, build_optimizer, configure_for_training,
                                              train_step, unwrap)

    chunks = build_engine_model(cfg, par)
    load_hf_weights(unwrap(chunks[0]), cfg, hf_dir)
    configure_for_training(chunks)
    opt, sched = build_optimizer(chunks, OptimConfig(lr=1e-3, warmup_fraction=0.0, schedule="constant"),
                                 par, "float32", steps)
    losses = []
    for step in range(steps):
        mbs = fixed_batches(cfg, step, n_micro=2)[dp_rank::dp_size]
        r = train_step(chunks, opt, sched, mbs, masked_token_loss)
        losses.append(r.stats["loss_sum"] / r.stats["tokens"])
    return losses


def parity_ids(cfg: ModelConfig, n_tokens: int = 40) -> torch.Tensor:
    return torch.randint(0, cfg.vocab_size, (2, n_tokens), generator=torch.Generator().manual_seed(5))


def llama3_style_tokenizer(out) -> "object":
    """The bundled Llama-3-vocabulary tokenizer (DeepSeek-R1-distill-Llama) saved to ``out`` so that it adds
    BOS on encode, as Meta's Llama-3.x ``tokenizer.json`` does (its post-processor is a TemplateProcessing
    that prepends ``<|begin_of_text|>``; the bundled copy's post-processor only has the ByteLevel step)."""
    import json
    import shutil
    from pathlib import Path

    from transformers import AutoTokenizer

    from nemo_thinkrm.config.model import TokenizerConfig
    from nemo_thinkrm.models.tokenizer import load_tokenizer

    src = load_tokenizer(TokenizerConfig(name="deepseek_r1_distill_llama"))
    out = Path(out)
    shutil.copytree(src.name_or_path, out, dirs_exist_ok=True)
    spec = json.loads((out / "tokenizer.json").read_text())
    bos, bos_id = src.bos_token, src.bos_token_id
    seq = [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]
    pair = seq + [{"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}]
    spec["post_processor"] = {"type": "Sequence", "processors": [
        spec["post_processor"]["processors"][0],
        {"type": "TemplateProcessing", "single": seq, "pair": pair,
         "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}}}]}
    (out / "tokenizer.json").write_text(json.dumps(spec))
    tok = AutoTokenizer.from_pretrained(str(out))
    assert tok("x")["input_ids"][0] == bos_id  # adds BOS like the real one
    return tok
