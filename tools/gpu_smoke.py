#!/usr/bin/env python
"""The GPU smoke run: the first minutes on a lent GPU, prepared and rehearsed on CPU.

On a bare GPU machine (CUDA PyTorch and transformers; no megatron-core, Hydra or OmegaConf,
no registry) ``tools/gpu_smoke.sh`` installs the wheels
carried in ``.whl/`` into ``.gpu_deps/`` and runs this file. Steps, each a subprocess with its
own time limit, one GPU, NCCL:

1. ``env``      torch/CUDA/device, megatron-core, Transformer Engine importable or not
2. ``parity``   🤗 vs megatron logits on the compute device (fp32 local spec; TE too if importable),
               and a bf16 forward
3. ``sft``      3 packed SFT steps in bf16 (``thinkrm sft`` under torchrun), checkpoint at step 2
4. ``resume``   the same run directory to step 4: resumes from ``latest`` (step 3), one step, and
               saves again (a fused optimizer's state must survive the round trip)
5. ``grpo``     2 GRPO steps from the SFT run, rollouts by the megatron sampler
6. ``big``      the Llama-3.1-8B geometry cut to 2 layers (hidden 4,096, vocabulary 128,256, bf16):
               one SFT step on an 8,192-token packed row, log-probs and entropy over 8,192 tokens,
               peak memory against ``training/memory.py``'s estimate
7. ``paths``    llama3 RoPE parity with 🤗 beyond 8,192 positions (Llama-3.1's scaling); the refit
               generator on the GPU against the 🤗 tensors; reference offload and restore

It writes ``$OUT/gpu_smoke.json`` (every step: ok, seconds, figures, the tail of its log); a run
starts by removing what an earlier run left in ``$OUT``. ``--dry-run`` checks the carried wheels
and the tree size (≤ 64 MiB travels) and rehearses every step on this machine's CPU (gloo, fp32;
``big`` with a narrower model and 1,024 tokens), so the device minutes are not spent on a typo.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WHEELS = REPO / ".whl"
# what the device machine lacks (megatron-core has a C extension: the cp312 build)
REQUIRED_WHEELS = {"megatron_core-0.16.1-cp312": "megatron-core", "hydra_core-1.3.8-py3": "hydra-core",
                   "omegaconf-2.3.0-py3": "omegaconf", "antlr4_python3_runtime-4.9.3-py3": "antlr4-python3-runtime"}
TREE_LIMIT_BYTES = 64 << 20
STEP_LIMIT_S = {"env": 40, "parity": 60, "sft": 80, "resume": 70, "grpo": 90, "big": 90, "paths": 70}
"""Per step; 500 s (8.3 min) if every step ran to its limit."""
PRODUCTS = ("sft", "grpo", "parity_hf", "paths_hf", "pairs.jsonl", "gpu_smoke.json", "env.json", "parity.json",
            "big.json", "paths.json", *(f"{s}.log" for s in STEP_LIMIT_S))
"""What a run writes into ``$OUT``: removed first, so a second run never resumes the first one's SFT."""


def _env(out: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    deps = REPO / ".gpu_deps"
    env["PYTHONPATH"] = os.pathsep.join([str(deps), str(REPO)] if deps.is_dir() else [str(REPO)])
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"), THINKRM_SMOKE_OUT=str(out))
    return env


def _run(name: str, cmd: list[str], out: Path, results: dict) -> subprocess.CompletedProcess:
    t0 = time.time()
    log = out / f"{name}.log"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=STEP_LIMIT_S[name], env=_env(out),
                              cwd=REPO)
        code, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, text = 124, f"{exc.stdout or ''}{exc.stderr or ''}\n[timed out after {STEP_LIMIT_S[name]} s]"
        proc = subprocess.CompletedProcess(cmd, code, text, "")
    log.write_text(text if isinstance(text, str) else text.decode(errors="replace"))
    results[name] = {"ok": code == 0, "exit_code": code, "seconds": round(time.time() - t0, 1),
                     "log_tail": str(text)[-1500:]}
    print(f"[gpu-smoke] {name}: {'ok' if code == 0 else f'FAILED ({code})'} in {results[name]['seconds']} s",
          flush=True)
    return proc


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",  # a free port
            "-m", "nemo_thinkrm", *args]


def _train_rows(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return [r for r in rows if r.get("kind") == "train"]


def clear_products(out: Path) -> None:
    import shutil

    for name in PRODUCTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run_plan(out: Path, gpu: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    clear_products(out)
    dtype = "bfloat16" if gpu else "float32"
    results: dict = {"gpu": gpu, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    me = [sys.executable, str(Path(__file__).resolve())]
    _run("env", me + ["--step", "env", "--out", str(out)], out, results)
    _run("parity", me + ["--step", "parity", "--out", str(out)], out, results)
    sft = out / "sft"
    common = ["--config-name", "tiny_sft", f"run_dir={sft}", f"model.params_dtype={dtype}", "seq_length=256",
              "data.val_fraction=0", "checkpoint.save_interval=2", "optim.warmup_fraction=0"]
    _run("sft", _torchrun("sft", *common, "train_iters=3"), out, results)
    rows = _train_rows(sft)
    results["sft"].update(steps=[r["step"] for r in rows], losses=[r["loss"] for r in rows],
                          tokens_per_s=[r.get("tokens_per_s") for r in rows])
    results["sft"]["ok"] &= len(rows) == 3 and all(math.isfinite(r["loss"]) for r in rows)
    proc = _run("resume", _torchrun("sft", *common, "train_iters=4"), out, results)
    rows = _train_rows(sft)
    results["resume"]["ok"] &= ("resumed from" in proc.stdout + proc.stderr and [r["step"] for r in rows][-1:] == [4]
                                and (sft / "checkpoints" / "step_00000004" / "train_state.json").is_file())
    pairs = out / "pairs.jsonl"
    subprocess.run(me + ["--step", "pairs", "--out", str(out)], check=True, env=_env(out), cwd=REPO, timeout=120)
    grpo = out / "grpo"
    _run("grpo", _torchrun("grpo", "--config-name", "tiny_grpo", f"run_dir={grpo}", f"model.hf_path={sft}",
                           f"data.path={pairs}", "train_iters=2", "generation.max_new_tokens=16",
                           f"model.params_dtype={dtype}", "checkpoint.save_interval=0"), out, results)
    rows = _train_rows(grpo)
    results["grpo"].update(steps=[r["step"] for r in rows], rollout_s=[r.get("time_rollout_s") for r in rows])
    results["grpo"]["ok"] &= len(rows) == 2
    for name in ("big", "paths"):
        _run(name, me + ["--step", name, "--out", str(out)], out, results)
        figures = out / f"{name}.json"
        if figures.is_file():
            results[name].update(json.loads(figures.read_text()))
    results["ok"] = all(v["ok"] for k, v in results.items() if isinstance(v, dict))
    (out / "gpu_smoke.json").write_text(json.dumps(results, indent=2))
    print(f"[gpu-smoke] {'all steps passed' if results['ok'] else 'FAILED'}; {out / 'gpu_smoke.json'}", flush=True)
    return results


# ---------------------------------------------------------------------- steps run in their own process


def step_env(out: Path) -> None:
    import importlib.util

    import torch

    info = {"torch": torch.__version__, "cuda": torch.cuda.is_available(), "python": sys.version.split()[0],
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "transformer_engine": importlib.util.find_spec("transformer_engine") is not None}
    import megatron.core

    info["megatron_core"] = getattr(megatron.core, "__version__", "?")
    (out / "env.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info))


def step_parity(out: Path) -> None:
    import importlib.util
    from dataclasses import replace

    import torch

    from nemo_thinkrm.checkpoint.convert import open_source
    from nemo_thinkrm.config.parallel import ParallelConfig
    from nemo_thinkrm.models.builder import build_gpt_model
    from nemo_thinkrm.training.parity import megatron_logits, megatron_vs_hf_logits
    from nemo_thinkrm.examples.tiny_hf import save_tiny_hf_checkpoint, tiny_model_config
    from nemo_thinkrm.runtime.distributed import init_distributed

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = tiny_model_config("llama", init_std=0.1)
    hf_dir = save_tiny_hf_checkpoint(cfg, out / "parity_hf", seed=0)
    init_distributed(ParallelConfig(), cfg)
    backends = ["local"] + (["te"] if torch.cuda.is_available() and importlib.util.find_spec("transformer_engine")
                            else [])
    figures = {}
    for backend in backends:
        model = build_gpt_model(cfg, ParallelConfig(), backend=backend)
        with open_source(str(hf_dir)) as src:
            src.load_into(model, cfg)
        figures[backend] = megatron_vs_hf_logits(model, cfg, hf_dir)
        if figures[backend]["max_abs_diff"] > 1e-3 or figures[backend]["top1_agreement"] < 0.99:
            raise SystemExit(f"parity failed for {backend}: {figures[backend]}")
        bf16_cfg = replace(cfg, params_dtype="bfloat16")
        bf16 = build_gpt_model(bf16_cfg, ParallelConfig(), backend=backend)
        with open_source(str(hf_dir)) as src:
            src.load_into(bf16, bf16_cfg)
        logits = megatron_logits(bf16, bf16_cfg, torch.randint(0, cfg.vocab_size, (2, 32)))
        figures[backend]["bf16_finite"] = bool(torch.isfinite(logits.float()).all())
        if not figures[backend]["bf16_finite"]:
            raise SystemExit(f"bf16 logits not finite for {backend}")
    (out / "parity.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))


def big_config(gpu: bool):
    """Llama-3.1-8B's geometry with 2 layers (CPU rehearsal: narrower, fp32, same vocabulary)."""
    from nemo_thinkrm.config.model import ModelConfig, RopeScalingConfig

    shape = (dict(hidden_size=4096, ffn_hidden_size=14336, num_attention_heads=32, num_query_groups=8,
                  params_dtype="bfloat16") if gpu else
             dict(hidden_size=256, ffn_hidden_size=512, num_attention_heads=8, num_query_groups=2,
                  params_dtype="float32"))
    return ModelConfig(family="llama", num_layers=2, vocab_size=128256, max_position_embeddings=131072,
                       rotary_base=500000.0, rope_scaling=RopeScalingConfig(), **shape)


def step_big(out: Path) -> None:
    import torch

    from nemo_thinkrm.algorithms.lm_loss import masked_token_loss
    from nemo_thinkrm.config.optim import OptimConfig
    from nemo_thinkrm.config.parallel import ParallelConfig
    from nemo_thinkrm.data.packing import pack_samples
    from nemo_thinkrm.data.sft import TokenizedSample
    from nemo_thinkrm.runtime.device import peak_memory_gb
    from nemo_thinkrm.runtime.distributed import init_distributed
    from nemo_thinkrm.trainers.sft import make_batch
    from nemo_thinkrm.training.engine import (build_engine_model, build_optimizer, configure_for_training,
                                              train_step, unwrap)
    from nemo_thinkrm.training.logprobs import token_logprobs, vocab_parallel_entropy
    from nemo_thinkrm.training.memory import estimate_memory
    from nemo_thinkrm.training.parity import megatron_logits

    gpu = torch.cuda.is_available()
    cfg, seq = big_config(gpu), 8192 if gpu else 1024
    par = ParallelConfig()
    init_distributed(par, cfg)
    chunks = build_engine_model(cfg, par)
    configure_for_training(chunks)
    optimizer, scheduler = build_optimizer(chunks, OptimConfig(lr=1e-5, warmup_fraction=0.0, schedule="constant"),
                                           par, cfg.params_dtype, 1)
    g = torch.Generator().manual_seed(0)
    lengths = [seq // 4 + 1, seq // 2 + 1, seq // 8 + 1]  # three samples and tail padding in one row
    samples = [TokenizedSample(f"s{i}", torch.randint(0, cfg.vocab_size, (n,), generator=g).tolist(),
                               [0] * (n // 4) + [1] * (n - n // 4)) for i, n in enumerate(lengths)]
    rows = pack_samples(samples, seq, pad_id=0)
    te = gpu and getattr(unwrap(chunks[0]), "layer_backend", "local") == "te"
    peak_memory_gb()
    t0 = time.time()
    result = train_step(chunks, optimizer, scheduler, [make_batch(rows[:1], te=te)], masked_token_loss)
    step_s = time.time() - t0
    peak = peak_memory_gb()
    loss = result.stats["loss_sum"] / max(result.stats["tokens"], 1.0)
    ids = torch.randint(0, cfg.vocab_size, (1, seq + 1), generator=g)
    logprobs = token_logprobs(chunks, ids[:, :-1], ids[:, 1:])
    with torch.no_grad():
        entropy = vocab_parallel_entropy(megatron_logits(unwrap(chunks[0]), cfg, ids[:, :-1]).float(), cfg.vocab_size)
    estimate = estimate_memory(cfg, par, seq, 1, 1, None)
    figures = {"big_layer_backend": "te" if te else "local", "big_tokens": seq, "big_loss": loss,
               "big_step_s": round(step_s, 2), "big_peak_memory_gb": peak, "big_estimate_gb": estimate.total_gb,
               "big_estimate": estimate.describe(),
               "big_logprob_mean": float(logprobs.mean()), "big_entropy_mean": float(entropy.mean())}
    (out / "big.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
    bound = math.log(cfg.vocab_size) + 1e-3
    if not (math.isfinite(loss) and bool(torch.isfinite(logprobs).all()) and bool((logprobs <= 0).all())
            and bool(torch.isfinite(entropy).all()) and 0 <= float(entropy.min()) and float(entropy.max()) <= bound):
        raise SystemExit(f"big: non-finite or impossible figures {figures}")


def step_paths(out: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from nemo_thinkrm.checkpoint.convert import open_source
    from nemo_thinkrm.config.model import RopeScalingConfig
    from nemo_thinkrm.config.parallel import ParallelConfig
    from nemo_thinkrm.generation.refit import iter_hf_weights
    from nemo_thinkrm.models.builder import build_gpt_model
    from nemo_thinkrm.examples.tiny_hf import save_tiny_hf_checkpoint, tiny_model_config
    from nemo_thinkrm.runtime.device import offload_module, place_module
    from nemo_thinkrm.runtime.distributed import init_distributed
    from nemo_thinkrm.trainers.policy import reference_on_device
    from nemo_thinkrm.training.logprobs import token_logprobs
    from nemo_thinkrm.training.parity import megatron_vs_hf_logits

    torch.backends.cuda.matmul.allow_tf32 = False
    gpu = torch.cuda.is_available()
    # Llama-3.1's RoPE scaling (factor 8 beyond 8,192 original positions), checked past 8,192 tokens
    cfg = tiny_model_config("llama", init_std=0.1, max_positions=131072)
    cfg.rotary_base, cfg.rope_scaling = 500000.0, RopeScalingConfig()
    hf_dir = save_tiny_hf_checkpoint(cfg, out / "paths_hf", seed=0)
    init_distributed(ParallelConfig(), cfg)
    model = place_module(build_gpt_model(cfg, ParallelConfig()))
    with open_source(str(hf_dir)) as src:
        src.load_into(model, cfg)
    figures = {"rope_tokens": 8704}
    rope = megatron_vs_hf_logits(model, cfg, hf_dir, n_tokens=8704, batch=1)
    figures.update({f"rope_{k}": v for k, v in rope.items()})
    # the refit generator (the weights vLLM receives) against the 🤗 tensors, on the compute device
    reference = load_file(str(hf_dir / "model.safetensors"))
    seen, worst = set(), 0.0
    for name, tensor in iter_hf_weights(model, cfg, 1):
        seen.add(name)
        worst = max(worst, float((tensor.float().cpu() - reference[name].float()).abs().max()))
    figures.update(refit_tensors=len(seen), refit_missing=sorted(set(reference) - seen), refit_max_abs_diff=worst,
                   refit_device=str(next(model.parameters()).device))
    # reference offload and restore: the same log-probs, and the GPU memory given back meanwhile
    ids = torch.randint(0, cfg.vocab_size, (2, 65), generator=torch.Generator().manual_seed(1))
    before = token_logprobs([model], ids[:, :-1], ids[:, 1:])
    held = torch.cuda.memory_allocated() if gpu else 0
    offload_module(model)
    freed = held - (torch.cuda.memory_allocated() if gpu else 0)
    with reference_on_device(model, True) as ref:
        after = token_logprobs([ref], ids[:, :-1], ids[:, 1:])
    figures.update(offload_freed_mb=freed / 2**20, offload_back_on_host=next(model.parameters()).device.type == "cpu",
                   offload_logprob_max_abs_diff=float((before - after).abs().max()))
    (out / "paths.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
    problems = []
    if rope["max_abs_diff"] > 1e-3 or rope["top1_agreement"] < 0.99:
        problems.append("llama3 RoPE parity past 8,192 positions")
    if figures["refit_missing"] or worst != 0.0:
        problems.append("refit tensors differ from 🤗's")
    if figures["offload_logprob_max_abs_diff"] > 1e-6 or not figures["offload_back_on_host"] or (gpu and freed <= 0):
        problems.append("reference offload/restore")
    if problems:
        raise SystemExit(f"paths: {', '.join(problems)}: {figures}")


def step_pairs(out: Path) -> None:
    from nemo_thinkrm.data.synthetic import make_arithmetic_pairs, write_preference_jsonl

    write_preference_jsonl(make_arithmetic_pairs(32, seed=0), out / "pairs.jsonl")


# ---------------------------------------------------------------------- checks before the device


def check_wheels() -> list[str]:
    """Problems with the carried wheels (empty: fine)."""
    found = sorted(p.name for p in WHEELS.glob("*.whl")) if WHEELS.is_dir() else []
    missing = [pkg for prefix, pkg in REQUIRED_WHEELS.items() if not any(n.startswith(prefix) for n in found)]
    return [f"{WHEELS} lacks {', '.join(missing)}: run tools/gpu_smoke.sh --fetch-wheels"] if missing else []


def tree_bytes() -> int:
    """What the device tool carries: tracked and unignored files, plus .whl/."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], capture_output=True, text=True,
                            cwd=REPO, check=True).stdout.split()
    total = sum((REPO / p).stat().st_size for p in listed if (REPO / p).is_file())
    return total + sum(p.stat().st_size for p in WHEELS.glob("*.whl"))


def dry_run(out: Path, rehearse: bool) -> int:
    problems = check_wheels()
    size = tree_bytes()
    if size > TREE_LIMIT_BYTES:
        problems.append(f"the tree with .whl/ is {size / 2**20:.1f} MiB > 64 MiB")
    print(f"[gpu-smoke] wheels: {'ok' if not check_wheels() else 'MISSING'}; tree + wheels {size / 2**20:.1f} MiB; "
          f"plan: {', '.join(STEP_LIMIT_S)} (limits {sum(STEP_LIMIT_S.values())} s, all steps)")
    for p in problems:
        print(f"[gpu-smoke] problem: {p}")
    if rehearse:
        results = run_plan(out, gpu=False)
        if not results["ok"]:
            problems.append("the CPU rehearsal failed")
    return 1 if problems else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "gpu_smoke_out"))
    ap.add_argument("--dry-run", action="store_true", help="check wheels and tree size, rehearse on CPU")
    ap.add_argument("--rehearse-only", action="store_true", help="only the CPU rehearsal (no wheel check)")
    ap.add_argument("--step", choices=["env", "parity", "pairs", "big", "paths"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out)
    if args.step:
        {"env": step_env, "parity": step_parity, "pairs": step_pairs, "big": step_big,
         "paths": step_paths}[args.step](out)
        return 0
    if args.rehearse_only:
        return 0 if run_plan(out, gpu=False)["ok"] else 1
    if args.dry_run:
        return dry_run(out, rehearse=True)
    import torch

    if not torch.cuda.is_available():
        print("[gpu-smoke] no CUDA device here; use --dry-run to rehearse on CPU", file=sys.stderr)
        return 2
    return 0 if run_plan(out, gpu=True)["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
