"""Command lines of the checkpoint tools (``tools/*.py`` and ``thinkrm convert …`` call these).

User mistakes (missing paths, unsupported architectures, existing outputs) print
one ``error:`` line and exit 2; a failed verification exits 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Optional, Sequence

from nemo_thinkrm.checkpoint.convert import to_hf, to_native, to_nemo1
from nemo_thinkrm.ckpt_tools.verify import main
from nemo_thinkrm.config.errors import ConfigError

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


def verify(argv: Optional[Sequence[str]] = None) -> int:
    return main(list(argv) if argv is not None else None)


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
