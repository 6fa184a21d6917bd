"""``thinkrm convert {hf-to-nemo|nemo-to-hf|verify}`` (and ``tools/*.py``): checkpoint conversion and
its verification, one command line.

The formats live in ``checkpoint/``; this module sits above ``training/`` because ``verify`` runs
the converted checkpoint through the training engine (any TP/PP, re-launching itself under a local
world when needed) beside the 🤗 original, on the same prompts, in fp32 (bf16 weights cast to fp32
exactly), so the check measures the conversion, not bf16 arithmetic. User mistakes (missing paths,
unsupported architectures or layouts, existing outputs) print one ``error:`` line and exit 2; a failed
verification exits 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import torch

from nemo_thinkrm.checkpoint.convert import checkpoint_tokenizer, open_source, to_hf, to_native, to_nemo1
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.parallel import ParallelConfig
from nemo_thinkrm.runtime.device import cuda_available
from nemo_thinkrm.runtime.distributed import init_distributed, is_rank0
from nemo_thinkrm.runtime.launch import run_local_world
from nemo_thinkrm.training.engine import build_engine_model, unwrap
from nemo_thinkrm.training.parity import pipeline_logits

PROMPTS = [
    "Which response is better? Response A says 7 * 8 = 56. Response B says 7 * 8 = 54.",
    "Explain why the sky is blue in one sentence.",
    "<think>\nLet me compare both answers step by step.",
]


def prompt_ids(tokenizer, vocab_size: int, n_random: int = 24) -> list[torch.Tensor]:
    """Token ids of the fixed prompts (with the checkpoint's tokenizer) plus random ids."""
    out = []
    if tokenizer is not None:
        for text in PROMPTS:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            out.append(torch.tensor([[i for i in ids if i < vocab_size]], dtype=torch.long))
    g = torch.Generator().manual_seed(0)
    out.append(torch.randint(0, vocab_size, (1, n_random), generator=g))
    return out


def compare_logits(hf_dir: str | Path, ckpt: str | Path, tp: int = 1, pp: int = 1, tol: float = 1e-3) -> dict:
    """Compare logits on this process's layout (call on every rank). Returns the figures."""
    import torch.distributed as dist
    import transformers
    from megatron.core import parallel_state as ps

    par = ParallelConfig(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    with open_source(ckpt) as src:
        cfg = replace(src.cfg, params_dtype="float32")
        init_distributed(par, cfg)
        chunks = build_engine_model(cfg, par, backend="local", wrap_ddp=False)
        src.load_into(unwrap(chunks[0]), cfg)
        tokenizer = checkpoint_tokenizer(src.tokenizer_dir) or checkpoint_tokenizer(Path(hf_dir)
                                                                 if (Path(hf_dir) / "tokenizer_config.json").is_file()
                                                                 else None)
    hf = None
    if ps.is_pipeline_last_stage() and ps.get_tensor_model_parallel_rank() == 0:
        hf = transformers.AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    max_diff, sum_diff, n, agree = 0.0, 0.0, 0, 0
    for ids in prompt_ids(tokenizer, cfg.vocab_size):
        ours = pipeline_logits(chunks, cfg, ids)
        if hf is not None and ours is not None:
            with torch.no_grad():
                ref = hf(ids).logits.float()[..., : cfg.vocab_size]
            d = (ours - ref).abs()
            max_diff = max(max_diff, float(d.max()))
            sum_diff += float(d.sum())
            n += d.numel()
            agree += int((ours.argmax(-1) == ref.argmax(-1)).sum())
    result = {"max_abs_diff": max_diff, "mean_abs_diff": sum_diff / max(n, 1),
              "top1_agreement": agree / max(n // cfg.vocab_size, 1), "tolerance": tol,
              "tp": tp, "pp": pp, "source_kind": src.kind, "ok": None}
    objs = [None] * dist.get_world_size()
    dist.all_gather_object(objs, result if hf is not None else None)
    result = next(o for o in objs if o is not None)
    result["ok"] = result["max_abs_diff"] <= tol
    return result


def check_layout(ckpt: str | Path, tp: int, pp: int) -> None:
    """Raise the one-line ``ConfigError`` a TP/PP layout the checkpoint's model cannot take would raise."""
    with open_source(ckpt) as src:
        ParallelConfig(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp).validate(
            src.cfg, tp * pp, cuda_available())


def verify(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(argv) if argv is not None else None
    ap = argparse.ArgumentParser(prog="verify_conversion",
                                 description="Compare a converted checkpoint's logits with the 🤗 original.")
    ap.add_argument("--hf", required=True, help="🤗 checkpoint directory (the reference)")
    ap.add_argument("--nemo", required=True, help="native checkpoint dir, training run dir, or .nemo file")
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--pp", type=int, default=1)
    ap.add_argument("--tol", type=float, default=1e-3, help="max abs logit difference allowed (default 1e-3)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    world = args.tp * args.pp
    if "WORLD_SIZE" not in os.environ:
        try:  # a layout the model cannot take is one line here, before any process starts
            check_layout(args.nemo, args.tp, args.pp)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if world > 1:
            return run_local_world("nemo_thinkrm.convert", list(argv or sys.argv[1:]), world)
    try:
        result = compare_logits(args.hf, args.nemo, args.tp, args.pp, args.tol)
    except ConfigError as exc:
        if is_rank0():
            print(f"error: {exc}", file=sys.stderr)
        return 2
    if is_rank0():
        print(f"verify {args.nemo} against {args.hf} at TP={args.tp} PP={args.pp}:")
        print(f"  max |Δlogit| = {result['max_abs_diff']:.3e}   mean |Δlogit| = {result['mean_abs_diff']:.3e}   "
              f"top-1 agreement = {result['top1_agreement']:.4f}   tolerance = {args.tol:g}")
        print("  OK" if result["ok"] else "  FAILED: difference above tolerance")
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


# ------------------------------------------------------------------ the command line

DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp32": "float32", "float32": "float32",
          "fp16": "float16", "float16": "float16"}


def _dtype(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    if value not in DTYPES:
        raise argparse.ArgumentTypeError(f"--dtype must be one of {sorted(DTYPES)}")
    return DTYPES[value]


def _run(fn, *args, **kwargs) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.time()
    try:
        out = fn(*args, **kwargs)
    except (ConfigError, FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} in {time.time() - t0:.1f} s")
    return 0


def hf_to_nemo(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="convert_hf_to_nemo",
                                 description="🤗 checkpoint → native (NeMo 2.0 layout) checkpoint or NeMo 1.x .nemo")
    ap.add_argument("--hf", required=True, help="🤗 directory (config.json + safetensors)")
    ap.add_argument("--out", required=True, help="output directory (native) or file (.nemo)")
    ap.add_argument("--dtype", type=_dtype, default=None, help="bf16 | fp16 | fp32 (default: keep)")
    ap.add_argument("--format", choices=["native", "nemo1"], default=None,
                    help="native (default) or nemo1; an --out ending in .nemo implies nemo1")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    fmt = args.format or ("nemo1" if args.out.endswith(".nemo") else "native")
    fn = to_nemo1 if fmt == "nemo1" else to_native
    return _run(fn, args.hf, args.out, dtype=args.dtype, overwrite=args.overwrite)


def nemo_to_hf(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="convert_nemo_to_hf",
                                 description="native checkpoint / training run / NeMo 1.x .nemo → 🤗 directory")
    ap.add_argument("--nemo", required=True, help="native checkpoint dir, run dir (uses latest), or .nemo file")
    ap.add_argument("--out", required=True, help="output 🤗 directory")
    ap.add_argument("--dtype", type=_dtype, default=None, help="bf16 | fp16 | fp32 (default: the checkpoint's)")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    return _run(to_hf, args.nemo, args.out, dtype=args.dtype, overwrite=args.overwrite)


SUBCOMMANDS = {"hf-to-nemo": hf_to_nemo, "nemo-to-hf": nemo_to_hf, "verify": verify}


def convert_stage(argv: Sequence[str]) -> int:
    """``thinkrm convert {hf-to-nemo|nemo-to-hf|verify} …``"""
    usage = "usage: thinkrm convert {hf-to-nemo|nemo-to-hf|verify} [options]   (--help for each)"
    if argv and argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    if not argv or argv[0] not in SUBCOMMANDS:
        print(usage, file=sys.stderr)
        return 2
    return SUBCOMMANDS[argv[0]](list(argv[1:]))


if __name__ == "__main__":  # a verify rank under run_local_world
    sys.exit(verify())
