"""The judge HTTP client against real aiohttp servers on 127.0.0.1 (no mocks of aiohttp).

A small fake OpenAI-compatible server runs in the test's event loop (two or
three instances, port 0) and can be told to be slow, fail its first k requests,
reject requests, demand a key, or die and come back on the same port. Every
scenario runs under ``asyncio.wait_for`` so a hang fails fast instead of
blocking the suite.
"""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.generation.openai_client import (
    API_KEY_ENV,
    ClientConfig,
    EndpointPool,
    GenerationResult,
    OpenAIJudgeClient,
    SamplingParams,
    load_endpoints,
    parse_response,
)
from tests.fake_openai import FakeServer

pytestmark = pytest.mark.timeout(60)

SCENARIO_TIMEOUT_S = 20.0
FAST = SamplingParams(temperature=0.0, max_tokens=8)


@asynccontextmanager
async def serving(*servers: FakeServer) -> AsyncIterator[None]:
    """Start the servers, and stop whichever are still running afterwards."""
    for server in servers:
        await server.start()
    try:
        yield
    finally:
        for server in servers:
            await server.stop()


def config(servers: list[FakeServer], **overrides: Any) -> ClientConfig:
    """A client config with test-sized timeouts, backoff and health interval."""
    values: dict[str, Any] = dict(
        endpoints=[s.url for s in servers],
        model="fake-model",
        max_concurrency=16,
        request_timeout_s=5.0,
        max_retries=3,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        health_check_interval_s=0.1,
    )
    values.update(overrides)
    return ClientConfig(**values)


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    """Run one async scenario with a hard time limit."""
    return asyncio.run(asyncio.wait_for(scenario(), SCENARIO_TIMEOUT_S))


async def eventually(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``predicate`` until true or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


def requests(count: int, prefix: str = "r") -> list[tuple[str, str, SamplingParams]]:
    return [(f"{prefix}{i}", f"prompt number {i:04d}", FAST) for i in range(count)]


def check_texts(reqs: list[tuple[str, str, SamplingParams]], results: list[GenerationResult],
                names: dict[str, str]) -> None:
    """Results are in input order, succeeded, and carry the answering server's echo."""
    assert [r.request_id for r in results] == [rid for rid, _, _ in reqs]
    for (_, prompt, _), result in zip(reqs, results):
        assert result.error is None, result.error
        assert result.texts == [f"{names[result.endpoint]}:{prompt[-10:]}"]
        assert result.completion_tokens == [5]
        assert result.finish_reasons == ["stop"]


# ----------------------------------------------------------------------------
# 1. load spreading
# ----------------------------------------------------------------------------


def test_load_is_spread_and_results_keep_input_order() -> None:
    a, b = FakeServer("a", latency_s=0.03), FakeServer("b", latency_s=0.03)
    reqs = requests(60)

    async def scenario() -> tuple[list[GenerationResult], dict[str, Any]]:
        async with serving(a, b), OpenAIJudgeClient(config([a, b])) as client:
            results = await client.generate_many(reqs, progress=True)
            return results, client.pool.stats()

    results, stats = run(scenario)
    check_texts(reqs, results, {a.url: "a", b.url: "b"})
    assert all(r.attempts == 1 for r in results)
    assert a.generations >= 20 and b.generations >= 20
    assert a.generations + b.generations == 60
    assert stats[a.url] == {"requests": a.generations, "failures": 0, "in_flight": 0, "healthy": True}
    assert stats[b.url]["requests"] == b.generations


# ----------------------------------------------------------------------------
# 2. a server dies mid-run and comes back
# ----------------------------------------------------------------------------


def test_killed_server_loses_no_request_and_is_revived_by_health_loop() -> None:
    a, b = FakeServer("a", latency_s=0.02), FakeServer("b", latency_s=0.02)
    reqs = requests(60)

    async def scenario() -> None:
        async with serving(a, b), OpenAIJudgeClient(config([a, b], max_concurrency=8)) as client:
            async def kill_a() -> None:
                while a.generations < 10:
                    await asyncio.sleep(0.002)
                await a.stop()

            killer = asyncio.create_task(kill_a())
            results = await client.generate_many(reqs)
            await killer
            check_texts(reqs, results, {a.url: "a", b.url: "b"})
            assert any(r.endpoint == b.url and r.attempts > 1 for r in results)  # some moved over
            assert not client.pool.is_healthy(a.url)
            assert client.pool.stats()[a.url]["failures"] >= 1

            await asyncio.sleep(0.3)  # three health intervals against a closed port
            assert not client.pool.is_healthy(a.url)
            served_before = a.generations
            await a.start()  # same port
            assert await eventually(lambda: client.pool.is_healthy(a.url), 1.0)

            more = await client.generate_many(requests(10, prefix="m"))
            assert all(r.ok for r in more)
            assert a.generations > served_before  # traffic flows to it again

    run(scenario)


def test_timeout_marks_endpoint_dead_and_retries_elsewhere() -> None:
    slow, fast = FakeServer("slow", latency_s=0.6), FakeServer("fast")

    async def scenario() -> tuple[GenerationResult, dict[str, Any]]:
        async with serving(slow, fast):
            cfg = config([slow, fast], request_timeout_s=0.2, health_check_interval_s=5.0)
            async with OpenAIJudgeClient(cfg) as client:
                return await client.generate("t", "take your time", FAST), client.pool.stats()

    result, stats = run(scenario)
    assert result.ok and result.endpoint == fast.url and result.attempts == 2  # slow was tried first
    assert result.texts == ["fast:" + "take your time"[-10:]]
    assert stats[slow.url]["failures"] == 1 and not stats[slow.url]["healthy"]


# ----------------------------------------------------------------------------
# 3. retry policy by status code
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("status, failures", [(500, 2), (503, 1), (429, 3)])
def test_5xx_and_429_are_retried_and_attempts_counted(status: int, failures: int) -> None:
    server = FakeServer("s")
    server.fail_first, server.fail_status = failures, status

    async def scenario() -> tuple[GenerationResult, dict[str, Any]]:
        async with serving(server), OpenAIJudgeClient(config([server])) as client:
            return await client.generate("one", "hello judge", FAST), client.pool.stats()

    result, stats = run(scenario)
    assert result.error is None and result.texts == ["s:ello judge"]
    assert result.attempts == failures + 1
    assert server.generations == failures + 1
    assert stats[server.url]["failures"] == failures
    assert stats[server.url]["healthy"]  # a 5xx does not mark the endpoint dead


def test_retry_budget_exhausted_on_5xx_sets_error() -> None:
    server = FakeServer("s")
    server.fail_first = 100

    async def scenario() -> GenerationResult:
        async with serving(server), OpenAIJudgeClient(config([server], max_retries=2)) as client:
            return await client.generate("one", "hello", FAST)

    result = run(scenario)
    assert result.texts == [] and result.attempts == 3 and server.generations == 3
    assert "HTTP 500" in result.error and "s is overloaded" in result.error
    assert "gave up after 3 attempt(s)" in result.error and server.url in result.error


def test_400_is_not_retried_and_carries_the_server_message() -> None:
    server, other = FakeServer("s"), FakeServer("o")
    server.always_status = other.always_status = 400

    async def scenario() -> GenerationResult:
        async with serving(server, other), OpenAIJudgeClient(config([server, other])) as client:
            return await client.generate("bad", "hello", FAST)

    result = run(scenario)
    assert result.attempts == 1 and result.texts == [] and result.completion_tokens == []
    assert server.generations + other.generations == 1
    assert "HTTP 400" in result.error and "rejects this request" in result.error
    assert "not retried" in result.error


# ----------------------------------------------------------------------------
# 4. every endpoint down
# ----------------------------------------------------------------------------


def test_all_endpoints_down_returns_errors_for_every_request() -> None:
    a, b = FakeServer("a"), FakeServer("b")
    reqs = requests(8)

    async def scenario() -> tuple[list[GenerationResult], dict[str, Any], float]:
        async with serving(a, b):
            pass  # learn two ports, then leave them closed
        started = time.monotonic()
        async with OpenAIJudgeClient(config([a, b], max_retries=3)) as client:
            results = await client.generate_many(reqs)
            return results, client.pool.stats(), time.monotonic() - started

    results, stats, elapsed = run(scenario)
    assert len(results) == 8 and [r.request_id for r in results] == [rid for rid, _, _ in reqs]
    for result in results:
        assert result.texts == [] and result.error is not None
        assert result.attempts == 4
        assert "gave up after 4 attempt(s)" in result.error and "endpoints tried: http://127.0.0.1:" in result.error
        assert "connection error at http://127.0.0.1:" in result.error  # the real cause, not just "none healthy"
    assert not stats[a.url]["healthy"] and not stats[b.url]["healthy"]
    assert elapsed < 5.0


def test_requests_wait_for_an_endpoint_to_come_back() -> None:
    a = FakeServer("a")
    reqs = requests(6)

    async def scenario() -> list[GenerationResult]:
        async with serving(a):
            await a.stop()
            cfg = config([a], max_retries=40, backoff_initial_s=0.05, backoff_max_s=0.1)
            async with OpenAIJudgeClient(cfg) as client:
                async def revive() -> None:
                    await asyncio.sleep(0.3)
                    await a.start()

                reviver = asyncio.create_task(revive())
                results = await client.generate_many(reqs)
                await reviver
                return results

    results = run(scenario)
    check_texts(reqs, results, {a.url: "a"})
    assert all(r.attempts > 1 for r in results)


# ----------------------------------------------------------------------------
# 5. API key
# ----------------------------------------------------------------------------


def test_api_key_from_config_and_env_and_401_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer("k", api_key="s3cret")

    async def one(**overrides: Any) -> GenerationResult:
        async with OpenAIJudgeClient(config([server], **overrides)) as client:
            return await client.generate("q", "hello", FAST)

    async def scenario() -> dict[str, GenerationResult]:
        async with serving(server):
            out = {"config": await one(api_key="s3cret")}
            monkeypatch.setenv(API_KEY_ENV, "s3cret")
            out["env"] = await one()
            before = server.generations
            out["wrong"] = await one(api_key="wrong")
            out["wrong_posts"] = server.generations - before  # type: ignore[assignment]
            monkeypatch.delenv(API_KEY_ENV)
            out["missing"] = await one()
            async with OpenAIJudgeClient(config([server], model=None, api_key="wrong")) as client:
                lookups = server.model_lookups
                out["lookup"] = await client.generate_many(requests(3))  # type: ignore[assignment]
                out["lookups"] = server.model_lookups - lookups  # type: ignore[assignment]
            return out

    out = run(scenario)
    assert out["config"].ok and out["env"].ok
    assert server.auth_headers[:2] == ["Bearer s3cret", "Bearer s3cret"]
    for key in ("wrong", "missing"):
        assert out[key].attempts == 1 and out[key].texts == []
        assert "HTTP 401" in out[key].error and "Unauthorized" in out[key].error
    assert out["wrong_posts"] == 1
    assert server.auth_headers[-2] is None  # no header without a key
    # model=None with a bad key: /v1/models answers 401 once, and every request fails fast on it
    assert out["lookups"] == 1
    for result in out["lookup"]:
        assert result.attempts == 1 and "GET /v1/models: HTTP 401" in result.error and "not retried" in result.error


# ----------------------------------------------------------------------------
# 6. chat mode, reasoning_content, n > 1
# ----------------------------------------------------------------------------


def test_chat_mode_joins_reasoning_and_returns_n_samples() -> None:
    server = FakeServer("c")
    server.reasoning = "compare A and B"
    server.completion_tokens = 7
    messages = [{"role": "system", "content": "be fair"}, {"role": "user", "content": "which is better?"}]

    async def scenario() -> tuple[GenerationResult, GenerationResult]:
        async with serving(server), OpenAIJudgeClient(config([server], mode="chat")) as client:
            two = await client.generate("c2", messages, SamplingParams(n=2, seed=3, stop=["</answer>"]))
            plain = await client.generate("c1", "a bare user string", FAST)
            return two, plain

    two, plain = run(scenario)
    think = "<think>\ncompare A and B\n</think>\n"
    assert two.texts == [f"{think}c:is better?#0", f"{think}c:is better?#1"]
    assert two.completion_tokens == [4, 3]  # usage total 7 split evenly, remainder first
    assert two.finish_reasons == ["stop", "stop"]
    assert server.bodies[0]["messages"] == messages
    assert server.bodies[0]["n"] == 2 and server.bodies[0]["seed"] == 3 and server.bodies[0]["stop"] == ["</answer>"]
    assert plain.texts == [f"{think}c:ser string"] and plain.completion_tokens == [7]
    assert server.bodies[1]["messages"] == [{"role": "user", "content": "a bare user string"}]
    assert "seed" not in server.bodies[1] and "stop" not in server.bodies[1]


def test_completions_mode_refuses_messages_before_sending() -> None:
    server = FakeServer("p")

    async def scenario() -> None:
        async with serving(server), OpenAIJudgeClient(config([server])) as client:
            with pytest.raises(ConfigError, match="render the chat template"):
                await client.generate("x", [{"role": "user", "content": "hi"}], FAST)
            with pytest.raises(ConfigError, match="render the chat template"):
                await client.generate_many([("ok", "fine", FAST), ("x", [{"role": "user", "content": "hi"}], FAST)])

    run(scenario)
    assert server.generations == 0


def test_parse_response_shapes() -> None:
    completions = {"choices": [{"index": 1, "text": "b", "finish_reason": "length"},
                               {"index": 0, "text": "a", "finish_reason": "stop"}],
                   "usage": {"completion_tokens": 9}}
    assert parse_response(completions, "completions", 2) == (["a", "b"], [5, 4], ["stop", "length"])
    chat = {"choices": [{"index": 0, "message": {"content": "C", "reasoning": "R"}, "finish_reason": "stop",
                         "usage": {"completion_tokens": 2}}]}
    assert parse_response(chat, "chat", 1) == (["<think>\nR\n</think>\nC"], [2], ["stop"])
    no_usage = {"choices": [{"message": {"content": None, "reasoning_content": None}}]}
    assert parse_response(no_usage, "chat", 1) == ([""], [0], ["unknown"])
    with pytest.raises(ValueError, match="expected n=2"):
        parse_response(completions | {"choices": completions["choices"][:1]}, "completions", 2)
    with pytest.raises(ValueError, match="choices"):
        parse_response({"object": "error"}, "completions", 1)


# ----------------------------------------------------------------------------
# 7. load_endpoints
# ----------------------------------------------------------------------------


def test_load_endpoints_from_string_file_and_list(tmp_path) -> None:
    assert load_endpoints(" http://a:8000, http://b:8001/v1/ ,https://c/v1") == [
        "http://a:8000", "http://b:8001", "https://c"]
    path = tmp_path / "judges.txt"
    path.write_text("# written by the judge job\n\nhttp://node1:8000  # tp=4\nhttp://node2:8000/v1\n"
                    "http://node1:8000\n   # trailing comment\n")
    assert load_endpoints(str(path)) == ["http://node1:8000", "http://node2:8000"]
    assert load_endpoints(path) == ["http://node1:8000", "http://node2:8000"]
    assert load_endpoints(["http://x:1/", "http://y:2"]) == ["http://x:1", "http://y:2"]
    assert load_endpoints("http://proxy/judge/v1") == ["http://proxy/judge"]


@pytest.mark.parametrize("spec, message", [
    ("", "empty"),
    ("  ,  ", "neither a URL"),
    (["", " "], "no judge endpoints"),
    ([], "no judge endpoints"),
    ("localhost:8000", "neither a URL"),
    ("/nonexistent/judges.txt", "neither a URL"),
    ("http://a:8000,ftp://b:21", "malformed judge endpoint 'ftp://b:21'"),
    ("http://", "malformed"),
    ("http://a:port", "bad port"),
    ("http://a:8000/v1?x=1", "no query"),
])
def test_load_endpoints_errors(spec: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_endpoints(spec)


def test_load_endpoints_file_with_only_comments_or_bad_line(tmp_path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n\n")
    with pytest.raises(ConfigError, match="no judge endpoints in endpoints file"):
        load_endpoints(str(empty))
    bad = tmp_path / "bad.txt"
    bad.write_text("http://ok:1\nnode3:8000\n")
    with pytest.raises(ConfigError, match=r"'node3:8000' in endpoints file"):
        load_endpoints(str(bad))
    with pytest.raises(ConfigError, match="neither a URL"):
        OpenAIJudgeClient(ClientConfig(endpoints=str(tmp_path / "missing.txt")))


# ----------------------------------------------------------------------------
# 8. model resolution
# ----------------------------------------------------------------------------


def test_model_none_resolves_via_v1_models() -> None:
    a, b = FakeServer("a", model_id="judge-7b"), FakeServer("b", model_id="judge-7b")

    async def scenario() -> tuple[list[GenerationResult], GenerationResult]:
        async with serving(a, b):
            async with OpenAIJudgeClient(config([a, b], model=None)) as client:
                resolved = await client.generate_many(requests(4))
            async with OpenAIJudgeClient(config([a, b], model="other")) as client:
                wrong = await client.generate("w", "hello", FAST)
            return resolved, wrong

    resolved, wrong = run(scenario)
    assert all(r.ok for r in resolved)
    models = sorted(body["model"] for body in a.bodies + b.bodies)
    assert models == ["judge-7b"] * 4 + ["other"]
    assert wrong.attempts == 1 and "HTTP 404" in wrong.error and "other" in wrong.error


# ----------------------------------------------------------------------------
# Health waiting, routing, sync entry point, config validation
# ----------------------------------------------------------------------------


def test_wait_until_healthy_names_silent_endpoints_and_falls_back_to_models() -> None:
    up = FakeServer("up", health_route=False)  # no /health: GET /v1/models answers instead
    down = FakeServer("down")

    async def scenario() -> None:
        async with serving(up, down):
            await down.stop()
            async with OpenAIJudgeClient(config([up])) as client:
                await client.wait_until_healthy(1.0)
            async with OpenAIJudgeClient(config([up, down])) as client:
                started = time.monotonic()
                with pytest.raises(ConfigError) as err:
                    await client.wait_until_healthy(0.3)
                assert time.monotonic() - started < 2.0
                assert down.url in str(err.value) and up.url not in str(err.value)
                assert client.pool.is_healthy(up.url) and not client.pool.is_healthy(down.url)

    run(scenario)


def test_pool_least_outstanding_with_round_robin_ties() -> None:
    pool = EndpointPool(["http://a", "http://b", "http://c"])
    assert [pool.acquire() for _ in range(4)] == ["http://a", "http://b", "http://c", "http://a"]
    pool.release("http://a", ok=True)
    pool.release("http://a", ok=False)  # a now has 0 in flight, b and c 1 each
    assert pool.acquire() == "http://a"
    assert pool.acquire(avoid={"http://b"}) == "http://c"  # b, c tie but b already failed this request
    pool.mark_dead("http://c", "test")
    assert all(pool.acquire() in ("http://a", "http://b") for _ in range(5))
    pool.mark_dead("http://a", "test")
    pool.mark_dead("http://b", "test")
    assert pool.acquire() is None
    pool.mark_alive("http://b")
    assert pool.acquire(avoid={"http://b"}) == "http://b"  # the only healthy one, even if avoided
    stats = pool.stats()
    assert stats["http://a"]["failures"] == 1 and not stats["http://a"]["healthy"]
    assert stats["http://b"]["healthy"] and stats["http://b"]["in_flight"] == stats["http://b"]["requests"]


def test_generate_many_sync_against_a_server_thread() -> None:
    server = FakeServer("t")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)
        reqs = requests(5)
        results = OpenAIJudgeClient.generate_many_sync(config([server]), reqs, wait_healthy_s=2.0)
        check_texts(reqs, results, {server.url: "t"})
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="mode"):
        ClientConfig(endpoints=["http://a"], mode="responses")
    with pytest.raises(ConfigError, match="max_concurrency"):
        ClientConfig(endpoints=["http://a"], max_concurrency=0)
    with pytest.raises(ConfigError, match="backoff"):
        ClientConfig(endpoints=["http://a"], backoff_initial_s=2.0, backoff_max_s=1.0)
    with pytest.raises(ConfigError, match="top_p"):
        SamplingParams(top_p=0.0)
    with pytest.raises(ConfigError, match="n must be"):
        SamplingParams(n=0)


def test_generate_outside_async_with_is_a_clear_error() -> None:
    client = OpenAIJudgeClient(ClientConfig(endpoints="http://127.0.0.1:9"))

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="async with"):
            await client.generate("x", "y", FAST)

    run(scenario)


def test_completions_requests_ask_the_server_not_to_add_special_tokens() -> None:
    """Issue 27 B11: a rendered Llama-3 chat prompt already starts with <|begin_of_text|>; sent as text
    without ``add_special_tokens: false``, vLLM's tokenizer adds a second one, so a served judge read
    another input than it was trained on. (Chat mode leaves templating to the server.)"""
    server = FakeServer("s")

    async def scenario() -> None:
        async with serving(server), OpenAIJudgeClient(config([server])) as client:
            await client.generate("r0", "<|begin_of_text|>rendered prompt", FAST)
        async with serving(server), OpenAIJudgeClient(config([server], mode="chat")) as client:
            await client.generate("r1", "a user turn", FAST)

    run(scenario)
    assert server.bodies[0]["add_special_tokens"] is False
    assert "add_special_tokens" not in server.bodies[1]
