#!/usr/bin/env python
"""The GPU smoke run: the first minutes on a lent GPU, prepared and rehearsed on CPU.

The device machine (see the device tool's README) has CUDA PyTorch and transformers but no
megatron-core, Hydra or OmegaConf, and no registry: ``tools/gpu_smoke.sh`` installs the wheels
carried in ``.whl/`` into ``.gpu_deps/`` and runs this file. Steps, each a subprocess with its
own time limit, on the tiny model, one GPU, NCCL:

1. ``env``      torch/CUDA/device, megatron-core, Transformer Engine importable or not
2. ``parity``   🤗 vs megatron logits on the compute device (fp32 local spec; TE too if importable),
               and a bf16 forward
3. ``sft``      3 packed SFT steps in bf16 (``thinkrm sft`` under torchrun), checkpoint at step 2
4. ``resume``   the same run directory to step 4: resumes from ``latest`` (step 3)
5. ``grpo``     2 GRPO steps from the SFT run, rollouts by the megatron sampler

It writes ``$OUT/gpu_smoke.json`` (every step: ok, seconds, figures, the tail of its log).
``--dry-run`` checks the carried wheels and the tree size (≤ 64 MiB travels) and rehearses
every step on this machine's CPU (gloo, fp32), so the device minutes are not spent on a typo.
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
STEP_LIMIT_S = {"env": 45, "parity": 90, "sft": 100, "resume": 90, "grpo": 95}  # 7 min at worst


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


def run_plan(out: Path, gpu: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
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
    results["resume"]["ok"] &= "resumed from" in proc.stdout + proc.stderr and [r["step"] for r in rows][-1:] == [4]
    pairs = out / "pairs.jsonl"
    subprocess.run(me + ["--step", "pairs", "--out", str(out)], check=True, env=_env(out), cwd=REPO, timeout=120)
    grpo = out / "grpo"
    _run("grpo", _torchrun("grpo", "--config-name", "tiny_grpo", f"run_dir={grpo}", f"model.hf_path={sft}",
                           f"data.path={pairs}", "train_iters=2", "generation.max_new_tokens=16",
                           f"model.params_dtype={dtype}", "checkpoint.save_interval=0"), out, results)
    rows = _train_rows(grpo)
    results["grpo"].update(steps=[r["step"] for r in rows], rollout_s=[r.get("time_rollout_s") for r in rows])
    results["grpo"]["ok"] &= len(rows) == 2
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
    from nemo_thinkrm.models.tiny_hf import save_tiny_hf_checkpoint, tiny_model_config
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
    ap.add_argument("--step", choices=["env", "parity", "pairs"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out)
    if args.step:
        {"env": step_env, "parity": step_parity, "pairs": step_pairs}[args.step](out)
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
