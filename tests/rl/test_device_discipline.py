"""Every path moves its tensors to the model's device: SFT (train + validation), GRPO (megatron
sampler, old/reference log-probs, update) and a pairwise-RLHF step run under the device audit.

How it works (``tests/device_audit.py``): ``compute_device()`` answers ``cuda:0`` while the
arithmetic stays on the CPU, and a ``TorchFunctionMode`` tracks which tensors are "on the
device" (moved there, made there, or computed from such) and which on the host (made by a
factory without a CUDA device, or ``.cpu()``). Any op that mixes the two — an input batch
that never reached the GPU meeting the embedding table, a host vector in an NCCL all-reduce,
a host index buffer written with device ids — fails with ``DeviceMixError``, as CUDA would.
Each stage runs as ``python -m tests.device_audit <stage> …`` in its own process.

Before the device boundary existed, the SFT stage failed here at its first forward
(``embedding got device tensors [(512, 64)] and host tensors [(4, 256)] at
training/engine.py (_forward_step)``), and the loss statistics at ``reduce_stats``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from nemo_thinkrm.models.tokenizer import tiny_bpe_dir
from tests.helpers import REPO, clean_env
from tests.device_audit import DeviceMixError, device_audit
from tests.fake_openai import FakeServer, in_thread

pytestmark = pytest.mark.slow


def audited(*argv: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "tests.device_audit", *argv], capture_output=True, text=True,
                          timeout=600, env=clean_env(HYDRA_FULL_ERROR="1"), cwd=REPO)
    out = proc.stdout + proc.stderr
    assert "DeviceMixError" not in out, out[-4000:]
    assert proc.returncode == 0, out[-4000:]
    assert "device audit:" in out and " ops checked, exit code 0" in out
    return out


def test_the_audit_catches_a_host_batch_and_a_host_collective(megatron_single):
    import torch.distributed as dist

    from nemo_thinkrm.config.model import ModelConfig
    from nemo_thinkrm.config.parallel import ParallelConfig
    from nemo_thinkrm.models.builder import build_gpt_model
    from nemo_thinkrm.runtime.device import collective_device, compute_device, to_device

    with device_audit():
        assert compute_device() == torch.device("cuda", 0)
        model = build_gpt_model(ModelConfig(), ParallelConfig())
        ids = torch.randint(0, 512, (2, 8))
        with pytest.raises(DeviceMixError, match="embedding got device tensors"):
            model(ids, None, None)
        assert model(to_device(ids), None, None).shape == (2, 8, 512)
        with pytest.raises(DeviceMixError, match="all_reduce got a host tensor"):
            dist.all_reduce(torch.zeros(3))
        dist.all_reduce(torch.zeros(3, device=collective_device()))
    assert compute_device() == torch.device("cpu")


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("audit") / "sft"
    out = audited("sft", "--config-name", "tiny_sft", f"run_dir={run}", "train_iters=2", "data.val_fraction=0.05",
                  "eval_interval=1", "checkpoint.save_interval=0")
    assert "[val] step 2/2" in out
    return run


def test_sft_and_grpo_under_the_audit(sft_run, tmp_path):
    from nemo_thinkrm.data.synthetic import make_arithmetic_pairs, write_preference_jsonl

    pairs = tmp_path / "pairs.jsonl"
    write_preference_jsonl(make_arithmetic_pairs(16, seed=0), pairs)
    out = audited("grpo", "--config-name", "tiny_grpo", f"run_dir={tmp_path / 'grpo'}", f"model.hf_path={sft_run}",
                  f"data.path={pairs}", "train_iters=2", "generation.max_new_tokens=16", "checkpoint.save_interval=0")
    assert "[train] step 2/2" in out


def test_pairwise_rlhf_step_under_the_audit(sft_run, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"What is {i} + 1?"}) + "\n" for i in range(4)))
    judge_tok = str(tiny_bpe_dir(512))
    with in_thread(FakeServer("judge", model_id=judge_tok)) as judge:
        out = audited("pairwise-rlhf", "--config-name", "tiny_pairwise_rlhf", f"run_dir={tmp_path / 'rlhf'}",
                      f"model.hf_path={sft_run}", f"prompt_path={prompts}", f"judge.endpoints={judge.url}",
                      f"judge.model={judge_tok}", "train_iters=1", "generation.max_new_tokens=8",
                      "checkpoint.save_interval=0")
    assert "[train] step 1/1" in out and judge.generations > 0
