"""The generative judge of response pairs, and the served judge as a cached ``Generator``.

``PairJudge`` is the one place where a pair of responses becomes a judge prompt (the judge template
in the judge's own chat template, over-length prompts refused before any engine sees them), is
asked of any engine, and comes back as a verdict with its health counted (failed, invalid, over
length). Every stage that judges pairs asks through it: ``eval``, ``robustness`` and ``synth``
(which render whole benchmarks with its renderer, ``genrm/prompts.py``), best-of-N and pairwise RLHF.

``CachedJudge``: the OpenAI backend, one client kept for the whole run.

Pairwise RLHF asks the judge servers thousands of times per step. Answers are cached by
(rendered prompt, sampling) — ``judge_cache.py`` — so a resumed or repeated run never pays
twice, and a request that occurs twice in one batch is sent once. The client (its HTTP
session, the endpoint pool with its health loop and failover state) is opened once on a
private event loop in a background thread and reused by every step; building a new
client, loop and pool per step would forget which servers are down and reopen every
connection.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from nemo_thinkrm.generation.interface import GenerationOutput, GenerationRequest, Generator
from nemo_thinkrm.generation.judge_cache import JudgeCache, cache_key
from nemo_thinkrm.generation.openai_client import ClientConfig, OpenAIJudgeClient, SamplingParams
from nemo_thinkrm.genrm import INVALID, JudgeTemplate, Verdict, parse_verdict
from nemo_thinkrm.genrm.prompts import pair_prompt
from nemo_thinkrm.models.tokenizer import chat_renderer

Ask = Callable[[list[GenerationRequest]], list[GenerationOutput]]


@dataclass(frozen=True)
class Judged:
    """One pair's outcome: the verdict (``INVALID`` unless one was read) and what the engine returned
    (``None`` when the prompt was over length and never sent)."""

    verdict: Verdict
    output: Optional[GenerationOutput]

    @property
    def status(self) -> str:
        if self.output is None:
            return "over_length"
        if self.output.error is not None:
            return "failed"
        return "ok" if self.verdict.valid else "invalid"


class PairJudge:
    """(context, response A, response B) → verdict, through any engine (``ask``: requests → outputs in
    order; or given per call, e.g. pairwise RLHF's ask-and-gather over data-parallel replicas)."""

    def __init__(self, template: JudgeTemplate, tokenizer: Any, think_prefix: bool, ask: Optional[Ask],
                 max_prompt_tokens: Optional[int] = None) -> None:
        self.template, self.ask, self.max_prompt_tokens = template, ask, max_prompt_tokens
        self.render, self.count = chat_renderer(tokenizer, think_prefix)
        self.stats: Counter = Counter(dict.fromkeys(("requests", "ok", "invalid", "failed", "over_length",
                                                     "output_tokens"), 0))

    def request(self, request_id: str, context: Any, response_a: str, response_b: str,
                seed: Optional[int] = None) -> Optional[GenerationRequest]:
        """The judge request for one ordered pair; ``None`` when its prompt is over ``max_prompt_tokens``.
        ``seed=None``: a seed from the prompt's content, so an identical pair gets the identical
        (cacheable) verdict."""
        text = pair_prompt(self.template, context, response_a, response_b, self.render)
        if self.max_prompt_tokens is not None and self.count(text) > self.max_prompt_tokens:
            return None
        return GenerationRequest(request_id, text, seed=int(cache_key(text, {})[:8], 16) if seed is None else seed)

    def judge(self, requests: Sequence[Optional[GenerationRequest]], ask: Optional[Ask] = None) -> list[Judged]:
        """Verdicts in request order (over-length ``None`` requests are not sent); ``stats`` counts
        requests, failed, invalid, over_length and output_tokens."""
        sent = [r for r in requests if r is not None]
        outs = iter((ask or self.ask)(sent) if sent else [])
        judged = []
        for r in requests:
            out = next(outs) if r is not None else None
            ok = out is not None and out.error is None
            verdict = parse_verdict(out.text or "", self.template.mode) if ok else INVALID
            j = Judged(verdict, out)
            judged.append(j)
            self.stats[j.status] += 1
            self.stats["output_tokens"] += out.output_tokens if ok else 0
        self.stats["requests"] += len(sent)
        return judged


class PersistentClient:
    """An ``OpenAIJudgeClient`` that stays open between synchronous calls."""

    def __init__(self, config: ClientConfig) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="judge-client", daemon=True)
        self._thread.start()
        self.client = OpenAIJudgeClient(config)
        self._run(self.client.__aenter__())

    def _run(self, coro) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def generate_many(self, requests: Sequence[tuple[str, Any, SamplingParams]], progress: bool = False):
        return self._run(self.client.generate_many(requests, progress=progress))

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._run(self.client.__aexit__(None, None, None))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()


class CachedJudge(Generator):
    """Judge requests → answers (``GenerationOutput.cached`` says which came from the cache)."""

    def __init__(self, config: ClientConfig, temperature: float, max_tokens: int,
                 cache: Optional[JudgeCache] = None) -> None:
        self.config = config
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.cache = cache
        self._client: Optional[PersistentClient] = None

    def sampling(self, seed: int) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens, seed=seed)

    def generate(self, requests: Sequence[GenerationRequest], progress: bool = False) -> list[GenerationOutput]:
        """Answers in request order: cached ones from the cache, the rest from the servers (each distinct
        request once); failed requests come back with ``error`` and are not cached."""
        params = [self.sampling(r.seed) for r in requests]
        keys = [cache_key(r.prompt, sp.to_payload()) for r, sp in zip(requests, params)]
        answers: list[Optional[GenerationOutput]] = [None] * len(requests)
        asked: dict[str, int] = {}  # key -> the request that is sent
        for i, (req, key) in enumerate(zip(requests, keys)):
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                answers[i] = GenerationOutput(req.id, hit["text"], hit["tokens"], "stop", cached=True)
            elif key not in asked:
                asked[key] = i
        todo = list(asked.values())
        if todo:
            if self._client is None:
                self._client = PersistentClient(self.config)
            results = self._client.generate_many([(requests[i].id, requests[i].prompt, params[i]) for i in todo],
                                                 progress=progress)
            for i, r in zip(todo, results):
                if r.ok:
                    answers[i] = GenerationOutput(requests[i].id, r.texts[0], r.completion_tokens[0],
                                                  r.finish_reasons[0], latency_s=r.latency_s)
                    if self.cache is not None:
                        self.cache.put(keys[i], {"text": r.texts[0], "tokens": r.completion_tokens[0],
                                                 "error": None, "latency_s": r.latency_s})
                else:
                    answers[i] = GenerationOutput(requests[i].id, "", 0, "error", error=r.error, latency_s=r.latency_s)
        out = []
        for i, key in enumerate(keys):
            a = answers[i]
            if a is None:  # the same request as an earlier one of this batch
                first = answers[asked[key]]
                a = GenerationOutput(requests[i].id, first.text, first.output_tokens, first.finish_reason,
                                     error=first.error, latency_s=first.latency_s, cached=True)
            out.append(a)
        return out

    def remember(self, requests: Sequence[GenerationRequest], answers: Sequence[GenerationOutput]) -> None:
        """Cache answers another rank obtained (successful ones not cached yet)."""
        if self.cache is None:
            return
        for req, ans in zip(requests, answers):
            key = cache_key(req.prompt, self.sampling(req.seed).to_payload())
            if ans.error is None and key not in self.cache:
                self.cache.put(key, {"text": ans.text, "tokens": ans.output_tokens, "error": None,
                                     "latency_s": ans.latency_s})

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
