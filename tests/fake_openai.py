"""A small OpenAI-compatible server on 127.0.0.1 for client and trainer tests (real aiohttp, no mocks).

Each test sets its behaviour per instance: slow, failing its first k requests, rejecting
requests, demanding a key, or dying and coming back on the same port. ``in_thread`` runs
one in a background event loop, for tests whose client is another process.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

from aiohttp import web


class FakeServer:
    """An OpenAI-compatible server whose behaviour each test sets per instance.

    Text is ``f"{name}:{prompt[-10:]}"`` (``#i`` appended per sample when n>1),
    so a result proves which server answered which prompt. Choices come back
    in reverse index order to check that the client sorts them.
    """

    def __init__(
        self,
        name: str,
        *,
        latency_s: float = 0.0,
        api_key: Optional[str] = None,
        model_id: str = "fake-model",
        health_route: bool = True,
    ) -> None:
        self.name = name
        self.latency_s = latency_s
        self.api_key = api_key
        self.model_id = model_id
        self.health_route = health_route
        self.fail_first = 0              # answer the first k generation POSTs with fail_status
        self.fail_status = 500
        self.always_status: Optional[int] = None   # e.g. 400: reject every generation POST
        self.reasoning: Optional[str] = None       # chat: a separate reasoning_content
        self.completion_tokens = 5                 # usage.completion_tokens for the whole response
        self.respond: Optional[Callable[[str], str]] = None  # the text for a prompt (instead of name:prompt)
        self.generations = 0                       # generation POSTs received (any outcome)
        self.model_lookups = 0                     # GET /v1/models received
        self.bodies: list[dict[str, Any]] = []
        self.auth_headers: list[Optional[str]] = []
        self.port = 0
        self._runner: Optional[web.AppRunner] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on 127.0.0.1 (port 0 the first time, the same port after a restart)."""
        app = web.Application()
        if self.health_route:
            app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/completions", self._generate)
        app.router.add_post("/v1/chat/completions", self._generate)
        # shutdown_timeout=0: stop() behaves like a crash, cutting in-flight requests.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def _unauthorized(self, request: web.Request) -> Optional[web.Response]:
        """vLLM's --api-key behaviour: /v1 routes need the bearer key, /health does not."""
        header = request.headers.get("Authorization")
        self.auth_headers.append(header)
        if self.api_key is not None and header != f"Bearer {self.api_key}":
            return web.json_response({"error": "Unauthorized"}, status=401)
        return None

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="")

    async def _models(self, request: web.Request) -> web.Response:
        self.model_lookups += 1
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        return web.json_response({"object": "list", "data": [{"id": self.model_id, "object": "model"}]})

    async def _generate(self, request: web.Request) -> web.Response:
        self.generations += 1
        count = self.generations
        denied = self._unauthorized(request)
        if denied is not None:
            return denied
        body = await request.json()
        self.bodies.append(body)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.always_status is not None:
            return _error(self.always_status, f"{self.name} rejects this request")
        if count <= self.fail_first:
            return _error(self.fail_status, f"{self.name} is overloaded")
        if body.get("model") != self.model_id:
            return _error(404, f"The model `{body.get('model')}` does not exist.")
        chat = request.path.endswith("/chat/completions")
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        return web.json_response(self._completion(prompt, int(body.get("n", 1)), chat))

    def _completion(self, prompt: str, n: int, chat: bool) -> dict[str, Any]:
        base = self.respond(prompt) if self.respond is not None else f"{self.name}:{prompt[-10:]}"
        choices = []
        for i in reversed(range(n)):
            text = base if n == 1 else f"{base}#{i}"
            if chat:
                message = {"role": "assistant", "content": text, "reasoning_content": self.reasoning}
                choices.append({"index": i, "message": message, "finish_reason": "stop"})
            else:
                choices.append({"index": i, "text": text, "finish_reason": "length" if i else "stop"})
        usage = {"prompt_tokens": 3, "completion_tokens": self.completion_tokens,
                 "total_tokens": 3 + self.completion_tokens}
        return {"id": "cmpl-1", "object": "chat.completion" if chat else "text_completion",
                "model": self.model_id, "choices": choices, "usage": usage}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"object": "error", "message": message, "type": "Error", "code": status},
                             status=status)


@contextmanager
def in_thread(server: FakeServer) -> Iterator[FakeServer]:
    """Serve ``server`` from a daemon thread's event loop until the block ends."""
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("fake OpenAI server did not start within 10 s")
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
