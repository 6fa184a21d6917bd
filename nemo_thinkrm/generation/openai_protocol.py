"""What the judge client sends and receives: sampling settings, client settings, one request's
result, and the parsing of an OpenAI completions / chat answer. No I/O here, so the wire format
can be read and tested apart from the client (``openai_client.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional, Union

from nemo_thinkrm.config.errors import ConfigError

API_KEY_ENV = "THINKRM_JUDGE_API_KEY"
MODES: tuple[str, ...] = ("completions", "chat")

Prompt = Union[str, list[dict[str, Any]]]

# Server error bodies can be whole HTML pages; the result keeps the useful start.
_ERROR_BODY_CHARS = 500

# ----------------------------------------------------------------------------
# Configs and results
# ----------------------------------------------------------------------------


@dataclass
class SamplingParams:
    """Sampling settings sent with every request; ``seed``/``stop`` are omitted when None."""

    temperature: float = 0.6
    top_p: float = 1.0
    max_tokens: int = 16384
    n: int = 1
    seed: Optional[int] = None
    stop: Optional[list[str]] = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ConfigError(f"sampling temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"sampling top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ConfigError(f"sampling max_tokens must be >= 1, got {self.max_tokens}")
        if self.n < 1:
            raise ConfigError(f"sampling n must be >= 1, got {self.n}")

    def to_payload(self) -> dict[str, Any]:
        """The OpenAI request fields for these settings."""
        body: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "n": self.n,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        if self.stop is not None:
            body["stop"] = list(self.stop)
        return body


@dataclass
class ClientConfig:
    """Where the judges are and how hard to try.

    ``endpoints`` is a list of base URLs, a comma-separated string, or a path
    to an endpoints file; it is resolved by ``load_endpoints`` when the client
    is built (not here), so a config can name a file the Slurm job writes later.
    """

    endpoints: Union[list[str], str]
    model: Optional[str] = None
    api_key: Optional[str] = None
    mode: str = "completions"
    max_concurrency: int = 64
    request_timeout_s: float = 600.0
    max_retries: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    health_check_interval_s: float = 5.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"judge client mode must be one of {MODES}, got {self.mode!r}")
        if self.max_concurrency < 1:
            raise ConfigError(f"judge client max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.request_timeout_s <= 0:
            raise ConfigError(f"judge client request_timeout_s must be > 0, got {self.request_timeout_s}")
        if self.max_retries < 0:
            raise ConfigError(f"judge client max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_initial_s < 0 or self.backoff_max_s < self.backoff_initial_s:
            raise ConfigError(
                "judge client backoff needs 0 <= backoff_initial_s <= backoff_max_s, got "
                f"{self.backoff_initial_s} / {self.backoff_max_s}"
            )
        if self.health_check_interval_s <= 0:
            raise ConfigError(
                f"judge client health_check_interval_s must be > 0, got {self.health_check_interval_s}"
            )


@dataclass
class GenerationResult:
    """One request's outcome. On failure ``texts`` is empty and ``error`` says why.

    ``latency_s`` is wall time from the call to the result, including waiting
    for a concurrency slot and all retries, because that is what a caller's
    throughput sees. ``endpoint`` is the one that answered, or on failure the
    last one tried (None if none was).
    """

    request_id: str
    texts: list[str]
    completion_tokens: list[int]
    finish_reasons: list[str]
    endpoint: Optional[str]
    latency_s: float
    attempts: int
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        """True when the request was answered."""
        return self.error is None


# ----------------------------------------------------------------------------
# Response parsing
# ----------------------------------------------------------------------------


def _choice_text(choice: dict[str, Any], mode: str) -> str:
    """A choice's full output; chat reasoning is re-wrapped in ``<think>`` tags.

    vLLM's reasoning parsers move the thinking out of ``content`` into
    ``reasoning_content`` (``reasoning`` in newer versions); verdict parsing and
    length statistics expect the whole generation, so we join them back.
    """
    if mode == "completions":
        text = choice.get("text")
        return text if isinstance(text, str) else ""
    message = choice.get("message")
    if not isinstance(message, dict):
        raise ValueError("chat choice without a message object")
    content = message.get("content") or ""
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if not isinstance(content, str) or not isinstance(reasoning, (str, type(None))):
        raise ValueError("chat message content/reasoning is not a string")
    if reasoning:
        return f"<think>\n{reasoning}\n</think>\n{content}"
    return content


def _split_tokens(body: dict[str, Any], choices: list[dict[str, Any]]) -> list[int]:
    """Completion tokens per choice.

    Servers report ``usage.completion_tokens`` for the whole response. When
    every choice carries its own ``usage.completion_tokens`` we use those;
    otherwise the total is split evenly with the remainder going to the first
    choices, so the per-choice counts always sum to the server's total (exact
    for n=1). Without any usage the counts are 0.
    """
    own = [c["usage"].get("completion_tokens") if isinstance(c.get("usage"), dict) else None for c in choices]
    if all(isinstance(t, int) for t in own):
        return [int(t) for t in own]  # type: ignore[arg-type]
    usage = body.get("usage")
    total = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if not isinstance(total, int):
        return [0] * len(choices)
    base, extra = divmod(total, len(choices))
    return [base + (1 if i < extra else 0) for i in range(len(choices))]


def parse_response(body: Any, mode: str, n: int) -> tuple[list[str], list[int], list[str]]:
    """(texts, completion_tokens, finish_reasons) of a completions or chat response.

    Choices are ordered by their ``index``. A body without exactly ``n``
    choices is a ValueError: the caller treats it like a server error (retry),
    because scoring assumes ``n`` samples per request.
    """
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise ValueError("response has no 'choices' list")
    choices = body["choices"]
    if not all(isinstance(c, dict) for c in choices):
        raise ValueError("response choices are not objects")
    if len(choices) != n:
        raise ValueError(f"response has {len(choices)} choices, expected n={n}")
    choices = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c.get("index"), int) else 0)
    texts = [_choice_text(c, mode) for c in choices]
    reasons = [str(c.get("finish_reason") or "unknown") for c in choices]
    return texts, _split_tokens(body, choices), reasons


def server_message(text: str) -> str:
    """The human part of an error body (OpenAI/vLLM JSON error or raw text), truncated."""
    message: Any = text
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            message = err["message"]
        elif data.get("message"):
            message = data["message"]
        elif isinstance(err, str):
            message = err
        elif data.get("detail"):
            message = data["detail"]
    message = str(message).strip() or "(empty body)"
    return message[:_ERROR_BODY_CHARS]
