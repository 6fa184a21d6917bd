"""What every preference-dataset adapter is made of: the ``Adapter`` record, the row context, the
field helpers that turn a raw row's values into checked ones (a bad value is a ``BadRow`` naming
the field), and the ``generic`` adapter for any JSONL/parquet file described by ``data.field_map``.

Each benchmark is one module in ``data/benchmarks/`` (its adapter, its sections and tags, and the
metrics of its own), registered by name in ``config/registry.py: DATASETS``; ``get_adapter`` finds
it there, so a config's ``data.name`` is checked before anything is loaded.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.data.records import (
    DEFAULT_SECTION,
    BadRow,
    FilteredRow,
    Message,
    PreferenceRecord,
    check_message,
)
from nemo_thinkrm.genrm.verdict import MAX_STRENGTH

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- adapter type



@dataclass(frozen=True)
class RowContext:
    """Where a row sits: its index in the loaded data, its raw id, the adapter name, the field map."""

    index: int
    source: str
    raw_id: str
    field_map: Optional[Mapping[str, str]] = None
    file: Optional[str] = None
    """The local file the row came from (None for hub rows): some benchmarks name a domain by file."""

    def record_id(self, suffix: str = "") -> str:
        """``"{source}:{row id or index}{suffix}"``: stable across runs for the same files."""
        return f"{self.source}:{self.raw_id}{suffix}"


Converter = Callable[[Mapping[str, Any], RowContext], list[PreferenceRecord]]


@dataclass(frozen=True)
class Adapter:
    """A dataset's schema knowledge: its source, its required columns and its row converter."""

    name: str
    convert: Converter
    description: str
    hub_id: Optional[str] = None
    hub_config: Optional[str] = None
    hub_data_dir: Optional[str] = None
    hub_split_aliases: Mapping[str, str] = field(default_factory=dict)
    required_columns: tuple[str, ...] = ()
    id_field: Optional[str] = None
    split_field: Optional[str] = None
    split_aliases: Mapping[str, str] = field(default_factory=dict)
    uses_field_map: bool = False

    def check_field_map(self, field_map: Optional[Mapping[str, str]]) -> None:
        """Refuse a field map the adapter would ignore, or a bad one for ``generic``."""
        if self.uses_field_map:
            check_generic_field_map(field_map)
        elif field_map:
            raise ConfigError(f"data.field_map is only read by the 'generic' adapter, not by {self.name!r}")

    def check_columns(self, columns: Sequence[str], field_map: Optional[Mapping[str, str]], origin: str) -> None:
        """Fail once, naming the columns, instead of skipping every row for the same reason."""
        if self.uses_field_map:
            check_generic_columns(columns, field_map or {}, origin)
            return
        missing = [c for c in self.required_columns if c not in columns]
        if missing:
            raise ConfigError(f"{origin} lacks the column(s) {missing} that the {self.name!r} adapter needs; "
                              f"it has {sorted(columns)}. Is this the right data.name?")

    def id_column(self, field_map: Optional[Mapping[str, str]]) -> Optional[str]:
        """The column holding the row id, or None when rows are identified by index."""
        if self.uses_field_map:
            return (field_map or {}).get("id")
        return self.id_field

    def read_id(self, row: Mapping[str, Any], index: int,
                field_map: Optional[Mapping[str, str]]) -> tuple[Optional[str], Optional[str]]:
        """``(raw id, None)``, or ``(None, reason)`` when the id column holds no usable id."""
        column = self.id_column(field_map)
        if column is None:
            return str(index), None
        value = row.get(column)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
            return None, f"field {column!r} holds no usable id ({value!r})"
        return str(value), None


# --------------------------------------------------------------------------- field helpers



def field_value(row: Mapping[str, Any], name: str) -> Any:
    value = row.get(name)
    if value is None:
        raise BadRow(f"field {name!r} missing")
    return value


def text_field(row: Mapping[str, Any], name: str) -> str:
    value = field_value(row, name)
    if not isinstance(value, str):
        raise BadRow(f"field {name!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise BadRow(f"field {name!r} is empty")
    return value


def int_field(value: Any, name: str) -> int:
    """An int from an int or an integral float (parquet/JSON may store 2 as 2.0); bool is refused."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRow(f"field {name!r} must be an integer, got {value!r}")
    return value


def signed_strength(row: Mapping[str, Any], name: str) -> int:
    """A −3..3 preference score; 0 (a tie) is filtered, not bad."""
    strength = int_field(field_value(row, name), name)
    if abs(strength) > MAX_STRENGTH:
        raise BadRow(f"field {name!r} must be in -3..3, got {strength}")
    if strength == 0:
        raise FilteredRow(f"tie ({name} 0)")
    return strength


def messages_field(value: Any, name: str) -> list[Message]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise BadRow(f"field {name!r} must be a list of messages, got {type(value).__name__}")
    try:
        return [check_message(message, f"{name}[{i}]") for i, message in enumerate(value)]
    except ValueError as exc:
        raise BadRow(str(exc)) from None


def user_turn(text: str) -> list[Message]:
    return [{"role": "user", "content": text}]


def prompt_context(value: Any, name: str) -> list[Message]:
    """A prompt given as text (one user message) or as a list of messages."""
    if isinstance(value, str):
        if not value.strip():
            raise BadRow(f"field {name!r} is empty")
        return user_turn(value)
    if value is None:
        raise BadRow(f"field {name!r} missing")
    return messages_field(value, name)


def make_record(**fields: Any) -> PreferenceRecord:
    """Build a record, turning its validation error into a ``BadRow`` with the same message."""
    try:
        return PreferenceRecord(**fields)
    except ConfigError:
        raise
    except ValueError as err:
        raise BadRow(str(err)) from err


def label_of_strength(strength: int) -> str:
    return "A" if strength < 0 else "B"

def response_list(row: Mapping[str, Any], name: str, count: Optional[int] = None) -> list[str]:
    """A list of non-empty response texts (exactly ``count`` of them when given)."""
    value = field_value(row, name)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value or (
            count is not None and len(value) != count):
        raise BadRow(f"field {name!r} must be a list of {count or 'one or more'} responses")
    for i, text in enumerate(value):
        if not isinstance(text, str) or not text.strip():
            raise BadRow(f"{name}[{i}] is empty or not a string")
    return list(value)


# --------------------------------------------------------------------------- generic


GENERIC_FIELDS: tuple[str, ...] = (
    "response_a", "response_b", "label", "chosen", "rejected", "prompt", "context", "strength", "section", "id")
_GENERIC_LABELS = {"A": "A", "B": "B", "A>B": "A", "B>A": "B", "0": "A", "1": "B"}


def check_generic_field_map(field_map: Optional[Mapping[str, str]]) -> None:
    """The generic adapter's field map must name one pair form and one prompt form.

    Pair forms: ``response_a`` + ``response_b`` + (``label`` and/or a signed
    ``strength``), or ``chosen`` + ``rejected`` (optionally a ``strength``
    magnitude 1..3). Prompt forms: ``prompt`` (text) or ``context`` (messages).
    """
    if not field_map:
        raise ConfigError("the 'generic' adapter needs data.field_map, e.g. {prompt: question, "
                          "response_a: answer_1, response_b: answer_2, label: winner}")
    unknown = sorted(set(field_map) - set(GENERIC_FIELDS))
    if unknown:
        raise ConfigError(f"unknown data.field_map keys {unknown}; allowed: {list(GENERIC_FIELDS)}")
    for key, column in field_map.items():
        if not isinstance(column, str) or not column:
            raise ConfigError(f"data.field_map.{key} must be a column name, got {column!r}")
    _check_generic_forms(set(field_map))


def _check_generic_forms(keys: set[str]) -> None:
    pair_ab, pair_cr = keys & {"response_a", "response_b"}, keys & {"chosen", "rejected"}
    if pair_ab and pair_cr:
        raise ConfigError("data.field_map: map either response_a/response_b (+label) or chosen/rejected, not both")
    if pair_ab and (pair_ab != {"response_a", "response_b"} or not keys & {"label", "strength"}):
        raise ConfigError("data.field_map needs response_a, response_b and a label (or a signed strength)")
    if pair_cr and (pair_cr != {"chosen", "rejected"} or "label" in keys):
        raise ConfigError("data.field_map needs both chosen and rejected (and no label: chosen is the better one)")
    if not pair_ab and not pair_cr:
        raise ConfigError("data.field_map needs response_a/response_b/label or chosen/rejected")
    if len(keys & {"prompt", "context"}) != 1:
        raise ConfigError("data.field_map needs exactly one of prompt (text) or context (list of messages)")


def check_generic_columns(columns: Sequence[str], field_map: Mapping[str, str], origin: str) -> None:
    """Every mapped column must exist; the error lists the file's columns so the fix is obvious."""
    for key, column in field_map.items():
        if column not in columns:
            raise ConfigError(f"data.field_map.{key}={column!r}: no such column in {origin}; "
                              f"its columns are {sorted(columns)}")


def _generic_label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    label = _GENERIC_LABELS.get(value.strip()) if isinstance(value, str) else None
    if label is None:
        raise BadRow(f"label must be A/B, A>B/B>A or 0/1, got {value!r}")
    return label


def _generic_pair(row: Mapping[str, Any], fm: Mapping[str, str]) -> tuple[str, str, str, Optional[int]]:
    """(response_a, response_b, label, signed strength) in either pair form."""
    strength = None
    if "strength" in fm and row.get(fm["strength"]) is not None:
        strength = int_field(row[fm["strength"]], fm["strength"])
        if strength == 0:
            raise FilteredRow(f"tie ({fm['strength']} 0)")
    if "chosen" in fm:
        if strength is not None and not 1 <= strength <= 3:
            raise BadRow(f"with chosen/rejected, {fm['strength']!r} must be 1..3, got {strength}")
        signed = None if strength is None else -strength
        return text_field(row, fm["chosen"]), text_field(row, fm["rejected"]), "A", signed
    if "label" in fm:
        label = _generic_label(field_value(row, fm["label"]))
    elif strength is not None:
        label = label_of_strength(strength)
    else:
        raise BadRow(f"field {fm['strength']!r} missing and no label mapped")
    return text_field(row, fm["response_a"]), text_field(row, fm["response_b"]), label, strength


def convert_generic(row: Mapping[str, Any], ctx: RowContext) -> list[PreferenceRecord]:
    """A user file described by ``data.field_map`` (see ``check_generic_field_map``)."""
    fm = ctx.field_map or {}
    response_a, response_b, label, strength = _generic_pair(row, fm)
    context = (prompt_context(text_field(row, fm["prompt"]), fm["prompt"]) if "prompt" in fm
               else messages_field(field_value(row, fm["context"]), fm["context"]))
    section = text_field(row, fm["section"]) if "section" in fm else DEFAULT_SECTION
    return [make_record(id=ctx.record_id(), context=context, response_a=response_a, response_b=response_b,
                        label=label, strength=strength, section=section, source=ctx.source)]


GENERIC = Adapter("generic", convert_generic, "any JSONL/parquet file described by data.field_map",
                  uses_field_map=True)


def get_adapter(name: str) -> Adapter:
    """The adapter registered as ``name`` (``config/registry.py: DATASETS``); a ``ConfigError`` lists the names
    otherwise."""
    from nemo_thinkrm.config.registry import DATASETS

    DATASETS.check(name, "data.name")
    return DATASETS.get(name)
