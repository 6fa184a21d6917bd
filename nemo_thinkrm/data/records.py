"""The one record type of preference data, and the checks every record passes.

Every benchmark and training set this project reads (HelpSteer2/3, RewardBench,
RM-Bench, JudgeBench, Skywork, user files) becomes ``PreferenceRecord``: a
conversation, two responses shown as A and B, which one is better, optionally by
how much, and the keys the benchmark reports by. Adapters (``data/benchmarks/``, ``data/adapters.py``)
build records from rows; the loader (``data/preference.py``) runs them over a file.

Rendering. A record feeds the judge template as
``render_pair(template, r.context, r.chosen, r.rejected, r.id, seed,
strength=r.strength_magnitude)``; the template module decides the shown order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence, TypedDict

from nemo_thinkrm.genrm.verdict import MAX_STRENGTH


logger = logging.getLogger(__name__)

ROLES: tuple[str, ...] = ("system", "user", "assistant")
LABELS: tuple[str, ...] = ("A", "B")
DEFAULT_SECTION = "all"
ALL_SPLITS = "all"
SCORES_ONLY = "scores_only"
"""Tag of records only a scoring judge can use (RewardBench 2's Ties: two correct answers have no
pairwise label); a generative judge leaves them out, counted, and no accuracy counts them."""
SCORE_TAGS = frozenset({SCORES_ONLY, "response", "num_correct"})
"""Tags that locate a response for a benchmark's score roll-up, not keys to report by."""
"""Pass ``split="all"`` to keep every row of a file whose rows carry their own split."""



class Message(TypedDict):
    """One chat turn: ``role`` is "system", "user" or "assistant"."""

    role: str
    content: str


class BadRow(Exception):
    """An adapter could not turn a row into records; the message says why.

    The loader skips the row and counts it: bad rows are the data's problem,
    so they must not stop a run, but they must be visible.
    """


class FilteredRow(Exception):
    """A valid row the adapter drops on purpose (a tie, another split).

    Kept apart from ``BadRow`` so that deliberate filtering never counts
    towards the "most rows are bad" refusal.
    """


# --------------------------------------------------------------------------- record


def _check_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{what} is empty")
    return value


def check_message(message: Any, where: str) -> Message:
    """One chat turn as every loader accepts it (preference, SFT and prompt files); ValueError naming ``where``."""
    if not isinstance(message, Mapping):
        raise ValueError(f"{where} must be a mapping, got {type(message).__name__}")
    role, content = message.get("role"), message.get("content")
    if role not in ROLES:
        raise ValueError(f"{where} has role {role!r}; expected one of {list(ROLES)}")
    if not isinstance(content, str):
        raise ValueError(f"{where} content must be a string, got {type(content).__name__}")
    return {"role": role, "content": content}


def _check_context(context: Any) -> tuple[Message, ...]:
    if isinstance(context, (str, bytes)) or not isinstance(context, Sequence):
        raise ValueError(f"context must be a sequence of messages, got {type(context).__name__}")
    messages = tuple(check_message(m, f"context message {i}") for i, m in enumerate(context))
    if not messages:
        raise ValueError("context is empty")
    if messages[-1]["role"] != "user":
        raise ValueError(f"context must end with a user message, ends with {messages[-1]['role']!r}")
    if not messages[-1]["content"].strip():
        raise ValueError("the last user message is empty")
    return messages


def _check_strength(strength: Any, label: str) -> Optional[int]:
    if strength is None:
        return None
    if isinstance(strength, bool) or not isinstance(strength, int):
        raise ValueError(f"strength must be an int, got {strength!r}")
    if strength == 0 or abs(strength) > MAX_STRENGTH:
        raise ValueError(f"strength must be in -3..3 and not 0, got {strength}")
    if (strength < 0) != (label == "A"):
        raise ValueError(f"strength {strength} disagrees with label {label!r} (negative means A is better)")
    return strength


def _check_tags(tags: Any) -> dict[str, str]:
    if not isinstance(tags, Mapping):
        raise ValueError(f"tags must be a mapping, got {type(tags).__name__}")
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"tags must map strings to strings, got {key!r}: {value!r}")
    return dict(tags)


@dataclass(frozen=True)
class PreferenceRecord:
    """One judged pair: a conversation, two responses, and which one is better.

    ``label`` is "A" or "B"; ``strength`` (optional) is the signed multiclass
    strength in −3..3 without 0, negative when A is better, so it always agrees
    with the label. ``section`` is the key the benchmark reports by and
    ``tags`` hold further roll-up keys (e.g. ``{"difficulty": "hard"}``).
    The record validates itself on construction (``ValueError``), copies the
    context into a tuple of plain dicts and the tags into a dict, so a record
    that exists is usable. It is frozen but not hashable (its tags are a dict).
    """

    id: str
    context: tuple[Message, ...]
    response_a: str
    response_b: str
    label: str
    strength: Optional[int] = None
    section: str = DEFAULT_SECTION
    tags: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        _check_text(self.id, "id")
        object.__setattr__(self, "context", _check_context(self.context))
        _check_text(self.response_a, "response_a")
        _check_text(self.response_b, "response_b")
        if self.label not in LABELS:
            raise ValueError(f"label must be 'A' or 'B', got {self.label!r}")
        _check_strength(self.strength, self.label)
        _check_text(self.section, "section")
        object.__setattr__(self, "tags", _check_tags(self.tags))
        if not isinstance(self.source, str):
            raise ValueError(f"source must be a string, got {type(self.source).__name__}")

    @property
    def chosen(self) -> str:
        """The better response, whichever side it is on."""
        return self.response_a if self.label == "A" else self.response_b

    @property
    def rejected(self) -> str:
        """The worse response."""
        return self.response_b if self.label == "A" else self.response_a

    @property
    def strength_magnitude(self) -> Optional[int]:
        """How much better the chosen response is (1..3), or None without a strength.

        This is the form ``render_pair(strength=...)`` takes ("chosen is better by k").
        """
        return None if self.strength is None else abs(self.strength)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (messages as a list) that ``from_json`` reads back."""
        return {
            "id": self.id,
            "context": [dict(m) for m in self.context],
            "response_a": self.response_a,
            "response_b": self.response_b,
            "label": self.label,
            "strength": self.strength,
            "section": self.section,
            "tags": dict(self.tags),
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "PreferenceRecord":
        """Rebuild a record from ``to_json`` output; unknown or missing keys raise ValueError."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a preference record must be a mapping, got {type(data).__name__}")
        known = {"id", "context", "response_a", "response_b", "label", "strength", "section", "tags", "source"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown preference record keys {unknown}")
        missing = sorted({"id", "context", "response_a", "response_b", "label"} - set(data))
        if missing:
            raise ValueError(f"preference record lacks keys {missing}")
        return cls(**dict(data))
