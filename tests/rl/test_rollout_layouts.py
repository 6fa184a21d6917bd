"""Model-parallel rollouts without vLLM, 2 gloo processes each:

* the refit (``generation/refit.py``) rebuilds every 🤗 tensor exactly on every rank, bucket by
  bucket, from a TP = 2 policy (Qwen2: biases, one KV head < TP) and a PP = 2 policy (tied
  Llama: the last stage's embedding copy must not be exported twice);
* the KV-cached megatron sampler at TP = 2 gives the same tokens on both ranks, the same as full
  recompute, greedy equal to 🤗 ``generate``, and seeded samples equal to a TP = 1 run.
The vLLM engine fed by this refit: tests/integration/test_vllm_rollouts.py."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from nemo_thinkrm.config.generation import GenerationConfig
from nemo_thinkrm.config.parallel import ParallelConfig
from nemo_thinkrm.generation.interface import GenerationRequest
from nemo_thinkrm.generation.megatron_sampler import MegatronSampler
from nemo_thinkrm.models.loading import load_hf_weights, model_config_for_hf_dir
from nemo_thinkrm.models.tokenizer import tiny_bpe_dir
from nemo_thinkrm.training.engine import build_engine_model, unwrap
from tests.helpers import run_torchrun

pytestmark = pytest.mark.dist
WORKER = "tests/rl/worker_rollout_layouts.py"


LAYOUTS = {"tp2": "qwen2", "pp2": "llama_tied"}


@pytest.fixture(scope="module")
def results(tiny_hf_dirs, tmp_path_factory) -> dict:
    """One 2-process run per layout, shared by the tests below."""
    out = {}
    for layout, variant in LAYOUTS.items():
        path = tmp_path_factory.mktemp(layout) / "out.json"
        run_torchrun(WORKER, layout, str(tiny_hf_dirs[variant]), str(path))
        out[layout] = json.loads(path.read_text())
    return out


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_refit_rebuilds_every_hf_tensor_on_every_rank(layout, results):
    r = results[layout]
    for rank in r["refit"]:
        assert rank["names"] == r["checkpoint_names"]  # each tensor once, none missing (tied: no lm_head)
        assert rank["max_gap"] == 0.0
    assert all(rank["buckets"] > 2 for rank in r["refit"])  # really bucketed (0.02 MB buckets)


def test_kv_cached_sampler_at_tp2(results, tiny_hf_dirs, megatron_single):
    hf_dir = tiny_hf_dirs["qwen2"]
    r = results["tp2"]
    rank0, rank1 = r["sampler"]
    assert rank0 == rank1  # rank-independent
    assert rank0["kv=True,t=0.0"] == rank0["kv=False,t=0.0"]
    assert rank0["kv=True,t=1.0"] == rank0["kv=False,t=1.0"]
    assert rank0["kv=True,t=1.0"] != rank0["kv=True,t=0.0"]
    hf = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    for p, got in zip(r["prompt_ids"], rank0["kv=True,t=0.0"]):
        ids = torch.tensor([p])
        with torch.no_grad():
            ref = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                              eos_token_id=None, pad_token_id=0)[0, len(p):].tolist()
        assert got == ref
    # the same seeds at TP = 1 (this process) give the same samples
    cfg = model_config_for_hf_dir(hf_dir)
    chunks = build_engine_model(cfg, ParallelConfig(), wrap_ddp=False)
    load_hf_weights(unwrap(chunks[0]), cfg, hf_dir)
    tok = transformers.AutoTokenizer.from_pretrained(tiny_bpe_dir(cfg.vocab_size))
    reqs = [GenerationRequest(f"r{i}", tok.decode(p), seed=11 + i) for i, p in enumerate(r["prompt_ids"])]
    outs = MegatronSampler(chunks, tok, GenerationConfig(temperature=1.0, max_new_tokens=12, batch_size=3),
                           []).generate(reqs)
    assert [o.prompt_ids for o in outs] == r["prompt_ids"]
    assert [o.output_ids for o in outs] == rank0["kv=True,t=1.0"]
