"""Run a module on N local processes (a torch.distributed world on one machine) for commands that
relaunch themselves, e.g. ``thinkrm convert verify --tp 3``.

Not ``torch.distributed.run``: when a worker exits with our one-line error (exit 2), torchrun
raises ``ChildFailedError`` and prints its own stack trace and failure table after it, so a user
who asked for an impossible layout read a page of launcher internals. Here rank 0's output goes
straight to the terminal; the other ranks' output is kept and shown only when one of them failed
first (their usual failure is a "connection closed" once rank 0 has exited). The first failing
rank's exit code is returned and the rest are stopped.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Sequence

DIST_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "GROUP_RANK",
            "GROUP_WORLD_SIZE", "ROLE_RANK", "ROLE_NAME", "ROLE_WORLD_SIZE")
"""What torchrun tells its workers about their world; plus every ``TORCHELASTIC_*`` variable (with
``TORCHELASTIC_USE_AGENT_STORE`` left in, a child's own one-process ``init_process_group`` connects to
the parent's agent store and waits forever)."""


def without_dist_env(environ=None) -> dict[str, str]:
    """``environ`` (default ``os.environ``) for a child process that must start a world of its own."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k not in DIST_ENV and not k.startswith("TORCHELASTIC_")}


def launcher_rank() -> int:
    """The launcher's global rank (torchrun/srun env), known before torch.distributed starts."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))


def free_port() -> int:
    """A port free now on 127.0.0.1 (for a rendezvous or a test server started at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_local_world(module: str, args: Sequence[str], world: int, poll_s: float = 0.2) -> int:
    """``python -m module args`` on ``world`` processes with env:// rendezvous; the first failure's exit code."""
    port = free_port()
    base = without_dist_env()
    procs, logs = [], []
    for rank in range(world):
        env = {**base, "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
               "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        log = None if rank == 0 else tempfile.TemporaryFile()
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, "-m", module, *args], env=env, stdout=log,
                                      stderr=subprocess.STDOUT if log is not None else None))
    failed = None
    try:
        while any(p.poll() is None for p in procs):
            failed = next((r for r, p in enumerate(procs) if p.returncode not in (None, 0)), None)
            if failed is not None:
                break
            time.sleep(poll_s)
        if failed is None:
            failed = next((r for r, p in enumerate(procs) if p.returncode != 0), None)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    if failed not in (None, 0):
        logs[failed].seek(0)
        sys.stderr.write(f"[rank {failed}] " + logs[failed].read().decode(errors="replace"))
    for log in logs:
        if log is not None:
            log.close()
    return 0 if failed is None else procs[failed].returncode
