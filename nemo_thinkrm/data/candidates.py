"""Candidate sets for best-of-N: one prompt and N ≥ 2 responses to rank, optionally which are right.

Row forms (JSONL/JSON/parquet; the prompt as ``prompt`` text or ``messages`` ending with the user
turn, as every prompt file):

* ``responses``: a list of N texts, with ``best`` (the right one's index) or ``correct`` (the right
  ones' indices) when known;
* ``chosen`` + ``rejected``: lists of texts (RewardBench 2's schema); the chosen ones are right.

``builtin:arithmetic:N[:K]`` gives N best-of-K (default 4) items of the embedded task. A row that
is none of these is skipped and counted, with its reason; most rows bad is an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.data.prompts import Messages, prompt_messages
from nemo_thinkrm.data.rows import REASONS_SHOWN, check_bad_fraction, read_rows
from nemo_thinkrm.data.synthetic import make_candidate_sets

logger = logging.getLogger(__name__)
BUILTIN = "builtin:arithmetic"


@dataclass(frozen=True)
class CandidateSet:
    id: str
    context: Messages
    responses: list[str]
    correct: frozenset = field(default_factory=frozenset)
    """Indices of the right responses (empty: unknown)."""


def _texts(value: Any, name: str) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{name!r} must be a non-empty list of responses")
    for i, t in enumerate(value):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"{name}[{i}] is empty or not a string")
    return list(value)


def _indices(value: Any, n: int, name: str) -> frozenset:
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n:
            raise ValueError(f"{name!r} must hold response indices in 0..{n - 1}, got {v!r}")
    return frozenset(values)


def candidate_set(row: Any, index: int) -> CandidateSet:
    """One row → a ``CandidateSet``; ValueError naming the key otherwise."""
    context, why = prompt_messages(row)
    if context is None:
        raise ValueError(why)
    if "responses" in row:
        responses = _texts(row["responses"], "responses")
        if "best" in row and "correct" in row:
            raise ValueError("give 'best' or 'correct', not both")
        key = "best" if "best" in row else "correct" if "correct" in row else None
        correct = _indices(row[key], len(responses), key) if key else frozenset()
    elif "chosen" in row and "rejected" in row:
        chosen, rejected = _texts(row["chosen"], "chosen"), _texts(row["rejected"], "rejected")
        responses, correct = chosen + rejected, frozenset(range(len(chosen)))
    else:
        raise ValueError("no 'responses' list (or 'chosen' + 'rejected' lists)")
    if len(responses) < 2:
        raise ValueError(f"best-of-N needs at least 2 responses, got {len(responses)}")
    return CandidateSet(str(row.get("id", index)), context, responses, correct)


def load_candidate_sets(path: str, limit: Optional[int] = None,
                        max_bad_fraction: float = 0.5) -> tuple[list[CandidateSet], int]:
    """(candidate sets, rows skipped) of a file, glob, directory or ``builtin:arithmetic:N[:K]``."""
    if path.startswith(BUILTIN):
        parts = path.split(":")
        try:
            n, k = int(parts[2]), int(parts[3]) if len(parts) > 3 else 4
        except (IndexError, ValueError):
            raise ConfigError(f"data_path={path!r}: expected {BUILTIN}:N or {BUILTIN}:N:K") from None
        rows = make_candidate_sets(n, k)
        sets = [candidate_set(r, i) for i, r in enumerate(rows)]
        return sets[:limit] if limit else sets, 0
    table = read_rows(path, key="data_path")
    out, bad = [], list(table.bad)
    seen: set[str] = set()
    for row in table:
        try:
            item = candidate_set(row.data, row.index)
            if item.id in seen:
                raise ValueError(f"duplicate id {item.id!r}")
        except ValueError as exc:
            bad.append((row.where, str(exc)))
            continue
        seen.add(item.id)
        out.append(item)
        if limit and len(out) >= limit:
            break
    first = "; ".join(f"{where}: {why}" for where, why in bad[:REASONS_SHOWN])
    check_bad_fraction(len(bad), table.n_lines, max_bad_fraction, f"candidate file {path}", first)
    if bad:
        logger.warning("%s: skipped %d of %d rows; first: %s", path, len(bad), table.n_lines, first)
    return out, len(bad)
