"""SFT records: chat samples whose last assistant turn is the target.

Accepted rows (JSONL / JSON / parquet):

* ``{"messages": [..., {"role": "assistant", "content": TARGET}]}`` — what ``thinkrm synth``
  writes and what generic chat data looks like;
* ``{"messages": [...], "response": TARGET}`` or ``{"prompt": "...", "response": TARGET}``.

With ``think_prefix`` the prompt ends with the ``<think>\\n`` opener (Think-RM), so a
target that itself starts with it has the opener removed — otherwise it would be
trained twice. Bad rows are skipped and counted with their row id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.data.rows import REASONS_SHOWN, check_bad_fraction, read_rows
from nemo_thinkrm.data.synthetic import judge_messages, make_arithmetic_pairs
from nemo_thinkrm.models.tokenizer import THINK_OPEN, encode_prompt_and_response

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFTRecord:
    id: str
    messages: tuple  # the prompt turns (dicts with role/content); the last is the user's
    response: str


@dataclass
class TokenizedSample:
    id: str
    input_ids: list[int]
    """Prompt + response tokens (the model sees all of them)."""
    loss_mask: list[int]
    """1 on response tokens (the targets), 0 on the prompt: aligned with ``input_ids``."""
    truncated: bool = False


@dataclass
class SFTLoadResult:
    records: list[SFTRecord]
    n_rows: int
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.records)} SFT samples from {self.n_rows} rows; skipped {len(self.skipped)} bad"


def _row_to_record(row: dict, idx: int) -> SFTRecord:
    rid = str(idx if row.get("id") is None else row["id"])
    msgs = row.get("messages")
    response = row.get("response")
    if msgs is None and row.get("prompt") is not None:
        if not isinstance(row["prompt"], str):
            raise ValueError(f"'prompt' must be a string, got {type(row['prompt']).__name__}")
        if not row["prompt"].strip():
            raise ValueError("empty prompt")
        msgs = [{"role": "user", "content": row["prompt"]}]
    if not isinstance(msgs, (list, tuple)) or not msgs:
        raise ValueError("no messages/prompt")
    for m in msgs:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in (
                "system", "user", "assistant"):
            raise ValueError("malformed message")
    msgs = [{"role": m["role"], "content": m["content"]} for m in msgs]
    if response is None:
        if msgs[-1]["role"] != "assistant":
            raise ValueError("last message is not the assistant's and no 'response' field")
        response = msgs[-1]["content"]
        msgs = msgs[:-1]
    if not isinstance(response, str):
        raise ValueError(f"'response' must be a string, got {type(response).__name__}")
    if not response.strip():
        raise ValueError("empty response")
    if not msgs or msgs[-1]["role"] != "user":
        raise ValueError("prompt does not end with a user turn")
    return SFTRecord(rid, tuple(msgs), response)


BUILTIN_PREFIX = "builtin:arithmetic"


def builtin_arithmetic(spec: str) -> SFTLoadResult:
    """``builtin:arithmetic[:N[:SEED]]`` — the embedded judging task's scripted traces (tiny recipes)."""
    parts = spec.split(":")[2:]
    try:
        n = int(parts[0]) if parts else 256
        seed = int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise ConfigError(f"{spec!r}: expected builtin:arithmetic[:N[:SEED]]") from None
    recs = [SFTRecord(p.id, tuple(judge_messages(p)), p.trace) for p in make_arithmetic_pairs(n, seed=seed)]
    return SFTLoadResult(recs, n)


def load_sft_records(path: str, max_bad_fraction: float = 0.5, key: str = "data.train_path") -> SFTLoadResult:
    """SFT samples of a file, glob or directory; bad lines and rows are skipped and counted with
    their file:line, and a file where more than ``max_bad_fraction`` of the rows are bad is an error."""
    if path.startswith(BUILTIN_PREFIX):
        return builtin_arithmetic(path)
    table = read_rows(path, key=key)
    records, skipped = [], [(where, why) for where, why in table.bad]
    for row in table:
        try:
            records.append(_row_to_record(row.data, row.index))
        except ValueError as exc:
            rid = row.data.get("id")
            skipped.append((row.where if rid is None else f"{rid} ({row.where})", str(exc)))
    result = SFTLoadResult(records, table.n_lines, skipped)
    first = "; ".join(f"{rid}: {why}" for rid, why in skipped[:REASONS_SHOWN])
    check_bad_fraction(len(skipped), table.n_lines, max_bad_fraction, f"SFT data {path}", first,
                       hint="expected 'messages' ending with the assistant turn, or prompt/messages + response")
    if skipped:
        logger.warning("%s: skipped %d of %d rows as bad; first: %s", path, len(skipped), table.n_lines, first)
    return result


def tokenize_record(rec: SFTRecord, tokenizer: Any, think_prefix: bool) -> TokenizedSample:
    response = rec.response
    if think_prefix and response.startswith(THINK_OPEN):
        response = response[len(THINK_OPEN):].lstrip("\n")
    prompt_ids, response_ids = encode_prompt_and_response(tokenizer, rec.messages, response, think_prefix)
    return TokenizedSample(rec.id, prompt_ids + response_ids, [0] * len(prompt_ids) + [1] * len(response_ids))


def fit_to_length(samples: Sequence[TokenizedSample], max_tokens: int, policy: str
                  ) -> tuple[list[TokenizedSample], list[str], list[str]]:
    """Apply the over-length policy; return (kept, truncated ids, dropped ids).

    ``max_tokens`` counts input tokens (seq_length + 1, since inputs and labels are
    shifted by one). Truncation keeps the prompt and cuts the response tail; a
    sample whose prompt alone does not fit is dropped either way.
    """
    if policy not in ("truncate", "drop"):
        raise ConfigError(f"data.over_length={policy!r} is not one of ['truncate', 'drop']")
    kept, truncated, dropped = [], [], []
    for s in samples:
        if len(s.input_ids) <= max_tokens:
            kept.append(s)
            continue
        n_prompt = s.loss_mask.index(1) if 1 in s.loss_mask else len(s.loss_mask)
        if policy == "drop" or n_prompt >= max_tokens - 1:
            dropped.append(s.id)
            continue
        kept.append(TokenizedSample(s.id, s.input_ids[:max_tokens], s.loss_mask[:max_tokens], truncated=True))
        truncated.append(s.id)
    return kept, truncated, dropped
