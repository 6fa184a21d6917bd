"""An async client that spreads judge requests over N OpenAI-compatible servers.

Judges are served by ``vllm serve`` / ``trtllm-serve`` (one per node or per GPU
group), and an evaluation or a GRPO reward step sends thousands of prompts at
once. This client keeps every server busy (least-outstanding-requests routing),
survives a server that dies mid-run (the endpoint is skipped until its health
check answers again) and never drops a request: a request that cannot be
answered within its retry budget comes back with ``error`` set and no texts, so
the caller counts and scores it instead of silently evaluating fewer rows.

Failure policy, per request:

* connection errors and timeouts: the endpoint is marked dead (a background loop
  probes it every ``health_check_interval_s``) and the request is retried on
  another healthy endpoint;
* HTTP 5xx and 429: retried with exponential backoff and full jitter, preferring
  an endpoint that has not failed this request yet;
* any other 4xx: not retried -- a bad request is a bug, and retrying it only
  hides the server's message, which the result's ``error`` carries;
* no healthy endpoint: the request waits up to the backoff ceiling, woken early
  when the health loop revives an endpoint, until the budget of
  ``1 + max_retries`` attempts is spent.

``attempts`` counts rounds of that loop, including rounds that found no healthy
endpoint to send to, so ``attempts <= 1 + max_retries`` always holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import aiohttp
from tqdm import tqdm

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.generation.openai_endpoints import load_endpoints, normalize_endpoint
from nemo_thinkrm.generation.openai_pool import EndpointPool
from nemo_thinkrm.generation.openai_protocol import (API_KEY_ENV, MODES, ClientConfig, GenerationResult, Prompt,
                                                     SamplingParams, parse_response, server_message)

logger = logging.getLogger(__name__)

__all__ = [
    "API_KEY_ENV",
    "MODES",
    "ClientConfig",
    "EndpointPool",
    "GenerationResult",
    "OpenAIJudgeClient",
    "SamplingParams",
    "load_endpoints",
    "normalize_endpoint",
    "parse_response",
]

# A health probe that hangs must not stall the loop that revives endpoints.
_PROBE_TIMEOUT_S = 10.0
# Below uvicorn's default 5 s keep-alive, so we rarely reuse a socket the server
# is closing (that race would read as a connection error and mark it dead).
_KEEPALIVE_S = 4.0


# ----------------------------------------------------------------------------
# ----------------------------------------------------------------------------
# Client
# ----------------------------------------------------------------------------


@dataclass
class _Outcome:
    """One attempt's result: parsed choices, or an error and whether to retry."""

    parsed: Optional[tuple[list[str], list[int], list[str]]] = None
    error: Optional[str] = None
    retryable: bool = True
    sent: bool = False  # True when an endpoint was actually tried


@dataclass
class _Trace:
    """What happened to one request so far, for its final result and error message."""

    attempts: int = 0
    tried: list[str] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)
    last_error: str = "not attempted"
    last_endpoint: Optional[str] = None
    last_endpoint_error: Optional[str] = None

    def note(self, endpoint: str) -> None:
        self.last_endpoint = endpoint
        if endpoint not in self.tried:
            self.tried.append(endpoint)


class OpenAIJudgeClient:
    """Async client for N OpenAI-compatible judge servers; use as ``async with``.

    One ``aiohttp.ClientSession`` is shared by all requests (connection reuse
    matters at thousands of requests) and the endpoint health loop runs for the
    lifetime of the ``async with`` block.
    """

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.endpoints = load_endpoints(config.endpoints)
        self.api_key = config.api_key if config.api_key is not None else (os.environ.get(API_KEY_ENV) or None)
        self.pool = EndpointPool(self.endpoints, self._probe, config.health_check_interval_s)
        self._route = "/v1/completions" if config.mode == "completions" else "/v1/chat/completions"
        self._model_name: Optional[str] = config.model
        self._model_fatal: Optional[_Outcome] = None  # a 4xx from /v1/models: fail fast, do not re-ask
        self._session: Optional[aiohttp.ClientSession] = None
        self._semaphore: Optional[asyncio.Semaphore] = None
        self._model_lock: Optional[asyncio.Lock] = None

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self) -> "OpenAIJudgeClient":
        if self._session is not None:
            raise RuntimeError("OpenAIJudgeClient is already open")
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        # The semaphore bounds in-flight requests, so the connector itself is unlimited
        # (its default of 100 would silently cap max_concurrency and queue health probes).
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=_KEEPALIVE_S)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self.config.request_timeout_s),
        )
        self._semaphore = asyncio.Semaphore(self.config.max_concurrency)
        self._model_lock = asyncio.Lock()
        self.pool.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.pool.stop()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use the client inside `async with OpenAIJudgeClient(config) as client:`")
        return self._session

    # -- health --------------------------------------------------------------

    async def _probe(self, endpoint: str, timeout_s: float = _PROBE_TIMEOUT_S) -> bool:
        """True when GET /health (or GET /v1/models if /health is 404) answers 200."""
        session = self._require_session()
        timeout = aiohttp.ClientTimeout(total=max(0.05, min(timeout_s, _PROBE_TIMEOUT_S)))
        try:
            async with session.get(f"{endpoint}/health", timeout=timeout) as resp:
                if resp.status != 404:
                    return resp.status == 200
            async with session.get(f"{endpoint}/v1/models", timeout=timeout) as resp:
                return resp.status == 200
        except (asyncio.TimeoutError, aiohttp.ClientError):
            return False

    async def wait_until_healthy(self, timeout_s: float) -> None:
        """Poll every endpoint's health until all answer 200, or ConfigError naming the silent ones.

        Judge servers take minutes to load weights; a job calls this before its
        first batch so a wrong host or a crashed server is reported by name
        instead of as thousands of failed requests.
        """
        self._require_session()
        deadline = time.monotonic() + timeout_s
        poll_s = min(1.0, self.config.health_check_interval_s)
        pending = list(self.endpoints)
        while True:
            remaining = deadline - time.monotonic()
            answers = await asyncio.gather(*(self._probe(url, max(remaining, 0.05)) for url in pending))
            for url, ok in zip(list(pending), answers):
                if ok:
                    pending.remove(url)
                    self.pool.mark_alive(url)
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                break
            await asyncio.sleep(min(poll_s, remaining))
        if pending:
            for url in pending:
                self.pool.mark_dead(url, "no answer to GET /health")
            raise ConfigError(
                f"judge endpoints never answered GET /health within {timeout_s:g}s: {', '.join(pending)}"
            )

    # -- model ---------------------------------------------------------------

    async def _fetch_model(self, endpoint: str) -> _Outcome:
        """The first model id an endpoint's GET /v1/models lists, as an outcome's single text."""
        session = self._require_session()
        timeout = aiohttp.ClientTimeout(total=min(_PROBE_TIMEOUT_S, self.config.request_timeout_s))
        try:
            async with session.get(f"{endpoint}/v1/models", timeout=timeout) as resp:
                text = await resp.text()
                if resp.status != 200:
                    retryable = resp.status == 429 or resp.status >= 500
                    return _Outcome(error=f"GET /v1/models: HTTP {resp.status} from {endpoint}: "
                                    f"{server_message(text)}", retryable=retryable)
            data = json.loads(text).get("data")
            model_id = data[0]["id"] if isinstance(data, list) and data and isinstance(data[0], dict) else None
            if not isinstance(model_id, str) or not model_id:
                return _Outcome(error=f"GET /v1/models at {endpoint} lists no model")
            return _Outcome(parsed=([model_id], [], []))
        except (asyncio.TimeoutError, aiohttp.ClientConnectionError) as exc:
            self.pool.mark_dead(endpoint, f"GET /v1/models: {_describe(exc)}")
            return _Outcome(error=f"GET /v1/models at {endpoint}: {_describe(exc)}")
        except (aiohttp.ClientError, ValueError, AttributeError) as exc:
            return _Outcome(error=f"GET /v1/models at {endpoint}: malformed answer ({_describe(exc)})")

    async def _model(self) -> _Outcome:
        """The served model name: the configured one, else the first healthy endpoint's first id.

        Resolved once under a lock, so a batch of thousands asks one server once;
        a non-retryable answer (e.g. 401) is remembered so the batch fails fast.
        """
        if self._model_name is not None:
            return _Outcome(parsed=([self._model_name], [], []))
        assert self._model_lock is not None
        async with self._model_lock:
            if self._model_fatal is not None:
                return self._model_fatal
            if self._model_name is None:
                outcome = _Outcome(error="could not resolve the model name: no healthy endpoint")
                for endpoint in self.pool.healthy_endpoints():
                    outcome = await self._fetch_model(endpoint)
                    if outcome.parsed is not None:
                        self._model_name = outcome.parsed[0][0]
                        logger.info("judge model resolved to %r via %s/v1/models", self._model_name, endpoint)
                        break
                    if not outcome.retryable:
                        self._model_fatal = outcome
                        return outcome
                if self._model_name is None:
                    return outcome
        return _Outcome(parsed=([self._model_name], [], []))

    # -- requests ------------------------------------------------------------

    def _request_body(self, prompt: Prompt, sampling: SamplingParams) -> dict[str, Any]:
        """The JSON body without ``model``; ConfigError when prompt and mode do not fit.

        Completions mode sends a raw prompt because we render chat templates
        ourselves; messages there mean the caller skipped rendering, a bug we
        refuse rather than flatten. It also sends ``add_special_tokens: false``
        (vLLM's completions field, since 0.5.3; TensorRT-LLM's server has it too):
        the rendered text already holds whatever BOS its chat template writes, and
        the server's tokenizer would add a second one (Llama-3's
        ``<|begin_of_text|>``), so the judge would read another input than it was
        trained on (training tokenises with ``add_special_tokens=False``).
        A plain string in chat mode is one user turn.
        """
        if not isinstance(sampling, SamplingParams):
            raise ConfigError(f"sampling must be a SamplingParams, got {type(sampling).__name__}")
        body = sampling.to_payload()
        if self.config.mode == "completions":
            if not isinstance(prompt, str):
                raise ConfigError(
                    "mode='completions' sends a rendered prompt string, got a message list; "
                    "render the chat template first or use mode='chat'"
                )
            body["prompt"] = prompt
            body["add_special_tokens"] = False
        elif isinstance(prompt, str):
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["messages"] = list(prompt)
        return body

    async def _post(self, endpoint: str, body: dict[str, Any], n: int) -> _Outcome:
        """One POST to one endpoint, classified for the retry policy."""
        session = self._require_session()
        try:
            async with session.post(f"{endpoint}{self._route}", json=body) as resp:
                if 200 <= resp.status < 300:
                    data = await resp.json(content_type=None)
                    return _Outcome(parsed=parse_response(data, self.config.mode, n))
                message = server_message(await resp.text())
                retryable = resp.status == 429 or resp.status >= 500
                return _Outcome(error=f"HTTP {resp.status} from {endpoint}: {message}", retryable=retryable)
        except asyncio.TimeoutError:
            reason = f"timeout after {self.config.request_timeout_s:g}s"
            self.pool.mark_dead(endpoint, reason)
            return _Outcome(error=f"{reason} at {endpoint}")
        except aiohttp.ClientConnectionError as exc:
            self.pool.mark_dead(endpoint, _describe(exc))
            return _Outcome(error=f"connection error at {endpoint}: {_describe(exc)}")
        except aiohttp.ClientError as exc:
            return _Outcome(error=f"transfer error at {endpoint}: {_describe(exc)}")
        except (ValueError, TypeError, KeyError) as exc:
            return _Outcome(error=f"malformed response from {endpoint}: {_describe(exc)}")

    async def _attempt(self, body: dict[str, Any], n: int, trace: _Trace) -> _Outcome:
        """One round: resolve the model, take a concurrency slot, pick an endpoint, send."""
        model = await self._model()
        if model.parsed is None:
            return model
        assert self._semaphore is not None
        async with self._semaphore:
            # Choose inside the slot: a choice made while queued would be stale.
            endpoint = self.pool.acquire(avoid=trace.failed)
            if endpoint is None:
                return _Outcome(error="no healthy endpoint")
            trace.note(endpoint)
            outcome = _Outcome(error="cancelled")
            try:
                outcome = await self._post(endpoint, {"model": model.parsed[0][0], **body}, n)
            finally:
                self.pool.release(endpoint, ok=outcome.parsed is not None)
        outcome.sent = True
        if outcome.parsed is None:
            trace.failed.add(endpoint)
        return outcome

    def _backoff_cap_s(self, retry: int) -> float:
        """The exponential backoff ceiling before retry number ``retry`` (1-based)."""
        return min(self.config.backoff_max_s, self.config.backoff_initial_s * 2 ** (retry - 1))

    async def _pause(self, retry: int) -> None:
        """Sleep before a retry.

        With a healthy endpoint: full jitter, uniform(0, cap), so a burst of
        failed requests does not come back in lockstep. With none: wait up to
        the whole cap but wake as soon as the health loop revives one -- jitter
        spreads load, and there is none to spread while every server is down,
        so the un-jittered cap just rides out a longer outage on the same budget.
        """
        cap = self._backoff_cap_s(retry)
        if self.pool.healthy_endpoints():
            await asyncio.sleep(random.uniform(0.0, cap))
        else:
            await self.pool.wait_for_healthy(cap)

    async def _generate(self, request_id: str, body: dict[str, Any], n: int) -> GenerationResult:
        """The retry loop around ``_attempt``; never raises for server trouble."""
        started = time.monotonic()
        trace = _Trace()
        for attempt in range(1, self.config.max_retries + 2):
            if attempt > 1:
                await self._pause(attempt - 1)
            trace.attempts = attempt
            outcome = await self._attempt(body, n, trace)
            if outcome.parsed is not None:
                texts, tokens, reasons = outcome.parsed
                return GenerationResult(
                    request_id, texts, tokens, reasons, trace.last_endpoint,
                    time.monotonic() - started, attempt,
                )
            self._record_error(trace, outcome)
            if not outcome.retryable:
                return self._failure(request_id, trace, started, retried=False)
            logger.debug("request %s attempt %d failed: %s", request_id, attempt, trace.last_error)
        return self._failure(request_id, trace, started, retried=True)

    @staticmethod
    def _record_error(trace: _Trace, outcome: _Outcome) -> None:
        """Keep the last error; a round that found no endpoint still names the last real failure."""
        error = outcome.error or "unknown error"
        if outcome.sent:
            trace.last_endpoint_error = error
        elif trace.last_endpoint_error:
            error = f"{error}; last endpoint error: {trace.last_endpoint_error}"
        trace.last_error = error

    def _failure(self, request_id: str, trace: _Trace, started: float, retried: bool) -> GenerationResult:
        """A failed result whose error names the last failure and every endpoint tried."""
        tried = ", ".join(trace.tried) or "none"
        how = f"gave up after {trace.attempts} attempt(s)" if retried else "not retried"
        error = f"{trace.last_error} ({how}; endpoints tried: {tried})"
        logger.warning("judge request %s failed: %s", request_id, error)
        return GenerationResult(
            request_id, [], [], [], trace.last_endpoint,
            time.monotonic() - started, trace.attempts, error,
        )

    async def generate(self, request_id: str, prompt: Prompt, sampling: SamplingParams) -> GenerationResult:
        """Generate ``sampling.n`` samples for one prompt (a string, or messages in chat mode).

        Raises only ConfigError for a prompt that does not fit the mode; every
        server-side failure is reported in the result's ``error``.
        """
        self._require_session()
        body = self._request_body(prompt, sampling)
        return await self._generate(request_id, body, sampling.n)

    async def generate_many(
        self,
        requests: Sequence[tuple[str, Prompt, SamplingParams]],
        progress: bool = False,
    ) -> list[GenerationResult]:
        """All requests concurrently (bounded by ``max_concurrency``); results in input order.

        Every request is validated before the first is sent, so a malformed
        request fails the batch up front rather than after hours of generation.
        """
        self._require_session()
        bodies = [(rid, self._request_body(prompt, sampling), sampling.n) for rid, prompt, sampling in requests]
        bar = tqdm(total=len(bodies), unit="rows", desc="judge", disable=not progress, dynamic_ncols=True)
        failed = 0

        async def run_one(rid: str, body: dict[str, Any], n: int) -> GenerationResult:
            nonlocal failed
            started = time.monotonic()
            try:
                result = await self._generate(rid, body, n)
            except Exception as exc:  # noqa: BLE001 -- one request's bug must not lose the batch
                logger.exception("judge request %s raised", rid)
                result = GenerationResult(rid, [], [], [], None, time.monotonic() - started, 0,
                                          f"internal error: {_describe(exc)}")
            failed += 0 if result.ok else 1
            bar.update(1)
            if failed:
                bar.set_postfix(failed=failed, refresh=False)
            return result

        try:
            return list(await asyncio.gather(*(run_one(*item) for item in bodies)))
        finally:
            bar.close()

    @classmethod
    def generate_many_sync(
        cls,
        config: ClientConfig,
        requests: Sequence[tuple[str, Prompt, SamplingParams]],
        progress: bool = False,
        wait_healthy_s: Optional[float] = None,
    ) -> list[GenerationResult]:
        """``generate_many`` for synchronous callers: opens a client, runs, closes.

        ``wait_healthy_s`` first waits that long for every endpoint (see
        ``wait_until_healthy``). Must not be called from a running event loop.
        """

        async def run() -> list[GenerationResult]:
            async with cls(config) as client:
                if wait_healthy_s is not None:
                    await client.wait_until_healthy(wait_healthy_s)
                return await client.generate_many(requests, progress=progress)

        return asyncio.run(run())


def _describe(exc: BaseException) -> str:
    """``Type: message`` of an exception (aiohttp messages alone are often empty)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
