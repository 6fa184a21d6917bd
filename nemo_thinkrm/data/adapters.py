"""One adapter per preference dataset, turning a raw row into ``PreferenceRecord``s.

An adapter knows one dataset's real schema and nothing else: where it lives
(hub id, config, local default), which columns it needs, how a row becomes
0..n records, and which rows are bad (``BadRow``) or dropped on purpose
(``FilteredRow``). ``load_preference_data`` does the reading and the books.

Conventions, each checked against the dataset's own documentation or code:

* HelpSteer2-Preference (``nvidia/HelpSteer2``, ``data_dir="preference"``):
  ``preference_strength`` −3..3, negative = ``response_1`` better; 0 (a tie)
  is filtered. One file holds both splits, told apart by the row's ``split``
  ("train"/"val"); ``split="test"``/``"validation"`` select "val". Multi-turn
  prompts are "{user 1}\\n<extra_id_1>Assistant\\n{assistant 1}\\n<extra_id_1>User\\n
  {user 2}" (HelpSteer2 dataset card).
* HelpSteer3 (``nvidia/HelpSteer3``, config "preference"):
  ``overall_preference`` −3..3, negative = ``response1`` better; 0 filtered.
* RewardBench (``allenai/reward-bench``, split "filtered"): sections and the
  roll-up follow ``rewardbench/constants.py`` (``EXAMPLE_COUNTS``,
  ``SUBSET_MAPPING``) and ``rewardbench/utils.py::calculate_scores_per_section``
  of allenai/reward-bench; the roll-up is ``evaluation/benchmarks/rewardbench.py``.
* RM-Bench (``THU-KEG/RM-Bench``): ``chosen``/``rejected`` hold 3 styles each
  (0 concise, 1 detailed plain text, 2 detailed markdown). The README of
  THU-KEG/RM-Bench ("how to compute the accuracy") builds a 3×3 matrix with
  rows = chosen style i, columns = rejected style j: *hard* is the upper-right
  triangle (i < j: the chosen answer is less fancy than the rejected one),
  *normal* the diagonal, *easy* the lower-left (i > j).
* JudgeBench (``ScalerLab/JudgeBench``, its released JSONL files read as they are):
  ``mmlu-pro-*`` → Knowledge, ``livebench-reasoning`` → Reasoning,
  ``livebench-math`` → Math, ``livecodebench`` → Coding.
* Skywork-Reward-Preference-80K-v0.2: ``chosen``/``rejected`` are whole
  conversations sharing every turn but the last (assistant) one.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.data.records import (
    DEFAULT_SECTION,
    BadRow,
    FilteredRow,
    Message,
    SCORES_ONLY,
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


def _get(row: Mapping[str, Any], name: str) -> Any:
    value = row.get(name)
    if value is None:
        raise BadRow(f"field {name!r} missing")
    return value


def _text(row: Mapping[str, Any], name: str) -> str:
    value = _get(row, name)
    if not isinstance(value, str):
        raise BadRow(f"field {name!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise BadRow(f"field {name!r} is empty")
    return value


def _as_int(value: Any, name: str) -> int:
    """An int from an int or an integral float (parquet/JSON may store 2 as 2.0); bool is refused."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRow(f"field {name!r} must be an integer, got {value!r}")
    return value


def _signed_strength(row: Mapping[str, Any], name: str) -> int:
    """A −3..3 preference score; 0 (a tie) is filtered, not bad."""
    strength = _as_int(_get(row, name), name)
    if abs(strength) > MAX_STRENGTH:
        raise BadRow(f"field {name!r} must be in -3..3, got {strength}")
    if strength == 0:
        raise FilteredRow(f"tie ({name} 0)")
    return strength


def _messages(value: Any, name: str) -> list[Message]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise BadRow(f"field {name!r} must be a list of messages, got {type(value).__name__}")
    try:
        return [check_message(message, f"{name}[{i}]") for i, message in enumerate(value)]
    except ValueError as exc:
        raise BadRow(str(exc)) from None


def _user(text: str) -> list[Message]:
    return [{"role": "user", "content": text}]


def _prompt_context(value: Any, name: str) -> list[Message]:
    """A prompt given as text (one user message) or as a list of messages."""
    if isinstance(value, str):
        if not value.strip():
            raise BadRow(f"field {name!r} is empty")
        return _user(value)
    if value is None:
        raise BadRow(f"field {name!r} missing")
    return _messages(value, name)


def _record(**fields: Any) -> PreferenceRecord:
    """Build a record, turning its validation error into a ``BadRow`` with the same message."""
    try:
        return PreferenceRecord(**fields)
    except ConfigError:
        raise
    except ValueError as err:
        raise BadRow(str(err)) from err


def _label_of(strength: int) -> str:
    return "A" if strength < 0 else "B"


# --------------------------------------------------------------------------- HelpSteer2-Preference

_HS2_TURN = re.compile(r"<extra_id_1>(User|Assistant)[ \t]*\r?\n?")


def helpsteer2_messages(prompt: str) -> list[Message]:
    """Split a HelpSteer2 prompt into messages.

    Multi-turn prompts start with the first user turn and mark every later
    turn with ``<extra_id_1>User`` / ``<extra_id_1>Assistant`` on its own line
    (HelpSteer2 dataset card); a prompt without markers is one user message.
    """
    parts = _HS2_TURN.split(prompt)
    if len(parts) == 1:
        return _user(prompt)
    messages: list[Message] = []
    if parts[0].strip():
        messages.append({"role": "user", "content": parts[0].strip()})
    for role, text in zip(parts[1::2], parts[2::2]):
        if not text.strip():
            raise BadRow(f"empty {role} turn in the prompt")
        messages.append({"role": role.lower(), "content": text.strip()})
    return messages


def convert_helpsteer2(row: Mapping[str, Any], ctx: RowContext) -> list[PreferenceRecord]:
    """A = ``response_1``, B = ``response_2``; strength = ``preference_strength`` (ties filtered)."""
    strength = _signed_strength(row, "preference_strength")
    return [_record(id=ctx.record_id(), context=helpsteer2_messages(_text(row, "prompt")),
                    response_a=_text(row, "response_1"), response_b=_text(row, "response_2"),
                    label=_label_of(strength), strength=strength, section=DEFAULT_SECTION,
                    source=ctx.source)]


# --------------------------------------------------------------------------- HelpSteer3


def convert_helpsteer3(row: Mapping[str, Any], ctx: RowContext) -> list[PreferenceRecord]:
    """A = ``response1``, B = ``response2``; strength = ``overall_preference``; section = domain."""
    strength = _signed_strength(row, "overall_preference")
    domain, language = _text(row, "domain"), _text(row, "language")
    return [_record(id=ctx.record_id(), context=_messages(_get(row, "context"), "context"),
                    response_a=_text(row, "response1"), response_b=_text(row, "response2"),
                    label=_label_of(strength), strength=strength, section=domain,
                    tags={"domain": domain, "language": language}, source=ctx.source)]


# --------------------------------------------------------------------------- RewardBench

REWARDBENCH_SUBSETS: dict[str, tuple[str, ...]] = {
    "Chat": ("alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"),
    "Chat Hard": ("mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                  "llmbar-adver-GPTOut", "llmbar-adver-manual"),
    "Safety": ("refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond",
               "donotanswer"),
    "Reasoning": ("math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"),
}
"""Leaderboard section → subsets, as ``SUBSET_MAPPING`` in allenai/reward-bench ``rewardbench/constants.py``."""

REWARDBENCH_SECTIONS: dict[str, str] = {
    subset: section for section, subsets in REWARDBENCH_SUBSETS.items() for subset in subsets}
"""Subset → leaderboard section (Chat, Chat Hard, Safety, Reasoning)."""

def convert_rewardbench(row: Mapping[str, Any], ctx: RowContext) -> list[PreferenceRecord]:
    """A = ``chosen``, B = ``rejected`` (the evaluator randomises the shown order); section by subset."""
    subset = _text(row, "subset")
    if subset not in REWARDBENCH_SECTIONS:
        raise BadRow(f"unknown RewardBench subset {subset!r}")
    return [_record(id=ctx.record_id(), context=_prompt_context(row.get("prompt"), "prompt"),
                    response_a=_text(row, "chosen"), response_b=_text(row, "rejected"), label="A",
                    section=REWARDBENCH_SECTIONS[subset], tags={"subset": subset}, source=ctx.source)]


# --------------------------------------------------------------------------- RM-Bench

RM_BENCH_STYLES: tuple[str, ...] = ("concise", "detailed", "detailed_markdown")
RM_BENCH_SECTIONS: dict[str, str] = {
    "chat": "chat", "math": "math", "code": "code", "safety-refuse": "safety", "safety-response": "safety"}
"""RM-Bench domain → section; both safety sub-domains report as "safety" (the original stays in tags)."""


def rm_bench_difficulty(chosen_style: int, rejected_style: int) -> str:
    """RM-Bench's difficulty of the (chosen style i, rejected style j) cell of its 3×3 matrix.

    "hard" when the chosen response is less styled than the rejected one
    (i < j, upper-right triangle), "normal" on the diagonal, "easy" when it is
    more styled (i > j, lower-left) — THU-KEG/RM-Bench README, compute_accuracy.
    """
    for style in (chosen_style, rejected_style):
        if isinstance(style, bool) or not isinstance(style, int) or not 0 <= style < len(RM_BENCH_STYLES):
            raise ConfigError(f"RM-Bench style index must be 0, 1 or 2, got {style!r}")
    if chosen_style == rejected_style:
        return "normal"
    return "easy" if chosen_style > rejected_style else "hard"


def _responses(row: Mapping[str, Any], name: str, count: Optional[int] = None) -> list[str]:
    """A list of non-empty response texts (exactly ``count`` of them when given)."""
    value = _get(row, name)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value or (
            count is not None and len(value) != count):
        raise BadRow(f"field {name!r} must be a list of {count or 'one or more'} responses")
    for i, text in enumerate(value):
        if not isinstance(text, str) or not text.strip():
            raise BadRow(f"{name}[{i}] is empty or not a string")
    return list(value)


def rm_bench_domain(row: Mapping[str, Any], file: Optional[str]) -> str:
    """The row's ``domain``, or — RM-Bench's per-domain files (``data/chat_filtered.json``,
    ``safety-refuse_filtered.json``, …) have no such field; only ``total_dataset.json`` does —
    the domain the file is named after, as RM-Bench's own scripts read one file per domain."""
    if row.get("domain") is not None:
        domain = _text(row, "domain")
        if domain not in RM_BENCH_SECTIONS:
            raise BadRow(f"unknown RM-Bench domain {domain!r}; known: {sorted(RM_BENCH_SECTIONS)}")
        return domain
    stem = Path(file).name.split(".")[0] if file else ""
    domain = stem.removesuffix("_filtered")
    if domain not in RM_BENCH_SECTIONS:
        raise BadRow(f"no 'domain' field, and the file name {Path(file).name if file else '(hub row)'!r} names no "
                     f"RM-Bench domain (<domain>_filtered.json, domain one of {sorted(RM_BENCH_SECTIONS)})")
    return domain


def convert_rm_bench(row: Mapping[str, Any], ctx: RowContext) -> list[PreferenceRecord]:
    """All 9 chosen[i] × rejected[j] pairs, ids suffixed ``:c{i}r{j}``, tagged with their difficulty."""
    domain = rm_bench_domain(row, ctx.file)
    context = _prompt_context(row.get("prompt"), "prompt")
    n = len(RM_BENCH_STYLES)
    chosen, rejected = _responses(row, "chosen", n), _responses(row, "rejected", n)
    return [_record(id=ctx.record_id(f":c{i}r{j}"), context=context, response_a=chosen[i],
                    response_b=rejected[j], label="A", section=RM_BENCH_SECTIONS[domain],
                    tags={"domain": domain, "difficulty": rm_bench_difficulty(i, j)}, source=ctx.source)
            for i in range(len(chosen)) for j in range(len(rejected))]


# --------------------------------------------------------------------------- RewardBench 2

RB2_BEST_OF_4 = ("Factuality", "Precise IF", "Math", "Safety", "Focus")
"""RewardBench 2's subsets with one chosen and three rejected responses (Ties is scored apart)."""


def convert_rewardbench2(row: Mapping[str, Any], ctx: RowContext) -> list[PreferenceRecord]:
    """A pairwise judge on ``allenai/reward-bench-2``: the chosen response against each rejected one
    (ids ``:r{k}``), tagged ``item=Subset/id``, so the roll-up counts an item right only when the chosen
    response wins all its comparisons (``evaluation/benchmarks/rewardbench2.py``).

    Ties items (ids ``ref:N`` / ``tied:N``, ``num_correct`` correct answers first) are scored upstream
    from one score per response: they become the first response against each other one (ids
    ``:t{j}``), tagged ``scores_only`` with the response index, for a reward model to score; a
    generative judge leaves them out and counts them (two correct answers have no pairwise label)."""
    subset = _text(row, "subset")
    if subset not in RB2_BEST_OF_4 + ("Ties",):
        raise BadRow(f"unknown RewardBench 2 subset {subset!r}")
    chosen, rejected = _responses(row, "chosen"), _responses(row, "rejected")
    context = _prompt_context(row.get("prompt"), "prompt")
    item = f"{subset}/{ctx.raw_id}"
    if subset == "Ties":
        kind, _, number = ctx.raw_id.partition(":")
        if kind not in ("ref", "tied") or not number.isdigit():
            raise BadRow(f"a Ties item id is 'ref:N' or 'tied:N', got {ctx.raw_id!r}")
        responses = chosen + rejected
        return [_record(id=ctx.record_id(f":t{j}"), context=context, response_a=responses[0], response_b=text,
                        label="A", section=subset, source=ctx.source,
                        tags={"item": item, SCORES_ONLY: "true", "response": str(j), "num_correct": str(len(chosen))})
                for j, text in enumerate(responses) if j > 0]
    if len(chosen) != 1:
        raise BadRow(f"a {subset} item has one chosen response, got {len(chosen)}")
    return [_record(id=ctx.record_id(f":r{k}"), context=context, response_a=chosen[0], response_b=text, label="A",
                    section=subset, tags={"item": item}, source=ctx.source)
            for k, text in enumerate(rejected)]


# --------------------------------------------------------------------------- JudgeBench

JUDGEBENCH_CATEGORIES: dict[str, str] = {
    "livebench-reasoning": "Reasoning", "livebench-math": "Math", "livecodebench": "Coding"}
_JUDGEBENCH_KNOWLEDGE_PREFIX = "mmlu-pro-"
_JUDGEBENCH_LABELS = {"A>B": "A", "B>A": "B"}


def judgebench_category(source: str) -> Optional[str]:
    """JudgeBench's category of a ``source``: Knowledge, Reasoning, Math, Coding, or None if unknown."""
    if source.startswith(_JUDGEBENCH_KNOWLEDGE_PREFIX):
        return "Knowledge"
    return JUDGEBENCH_CATEGORIES.get(source)


def convert_judgebench(row: Mapping[str, Any], ctx: RowContext) -> list[PreferenceRecord]:
    """One record per pair with the file's A/B order; ``label`` "A>B"/"B>A"; section = category."""
    source = _text(row, "source")
    category = judgebench_category(source)
    if category is None:
        raise BadRow(f"unknown JudgeBench source {source!r}")
    label = _JUDGEBENCH_LABELS.get(_text(row, "label"))
    if label is None:
        raise BadRow(f"label must be 'A>B' or 'B>A', got {row.get('label')!r}")
    return [_record(id=ctx.record_id(), context=_user(_text(row, "question")),
                    response_a=_text(row, "response_A"), response_b=_text(row, "response_B"), label=label,
                    section=category, tags={"source": source, "response_model": _text(row, "response_model")},
                    source=ctx.source)]


# --------------------------------------------------------------------------- Skywork


def convert_skywork(row: Mapping[str, Any], ctx: RowContext) -> list[PreferenceRecord]:
    """Context = the shared turns, A = chosen's last (assistant) turn, B = rejected's; label A."""
    chosen = _messages(_get(row, "chosen"), "chosen")
    rejected = _messages(_get(row, "rejected"), "rejected")
    for name, conversation in (("chosen", chosen), ("rejected", rejected)):
        if len(conversation) < 2 or conversation[-1]["role"] != "assistant":
            raise BadRow(f"{name} must end with an assistant turn after at least one user turn")
    if chosen[:-1] != rejected[:-1]:
        raise BadRow("chosen and rejected do not share the same earlier turns")
    source = row.get("source")
    tags = {"source": source} if isinstance(source, str) and source else {}
    return [_record(id=ctx.record_id(), context=chosen[:-1], response_a=chosen[-1]["content"],
                    response_b=rejected[-1]["content"], label="A", tags=tags, source=ctx.source)]


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
        strength = _as_int(row[fm["strength"]], fm["strength"])
        if strength == 0:
            raise FilteredRow(f"tie ({fm['strength']} 0)")
    if "chosen" in fm:
        if strength is not None and not 1 <= strength <= 3:
            raise BadRow(f"with chosen/rejected, {fm['strength']!r} must be 1..3, got {strength}")
        return _text(row, fm["chosen"]), _text(row, fm["rejected"]), "A", None if strength is None else -strength
    if "label" in fm:
        label = _generic_label(_get(row, fm["label"]))
    elif strength is not None:
        label = _label_of(strength)
    else:
        raise BadRow(f"field {fm['strength']!r} missing and no label mapped")
    return _text(row, fm["response_a"]), _text(row, fm["response_b"]), label, strength


def convert_generic(row: Mapping[str, Any], ctx: RowContext) -> list[PreferenceRecord]:
    """A user file described by ``data.field_map`` (see ``check_generic_field_map``)."""
    fm = ctx.field_map or {}
    response_a, response_b, label, strength = _generic_pair(row, fm)
    context = (_prompt_context(_text(row, fm["prompt"]), fm["prompt"]) if "prompt" in fm
               else _messages(_get(row, fm["context"]), fm["context"]))
    section = _text(row, fm["section"]) if "section" in fm else DEFAULT_SECTION
    return [_record(id=ctx.record_id(), context=context, response_a=response_a, response_b=response_b,
                    label=label, strength=strength, section=section, source=ctx.source)]


# --------------------------------------------------------------------------- registry

_HS2_EVAL = {"test": "val", "validation": "val"}

ADAPTERS: dict[str, Adapter] = {
    adapter.name: adapter for adapter in (
        Adapter("helpsteer2_preference", convert_helpsteer2,
                "HelpSteer2-Preference pairs with −3..3 strength (ties filtered)",
                hub_id="nvidia/HelpSteer2", hub_data_dir="preference",
                hub_split_aliases={s: "train" for s in ("test", "val", "validation", "train", "all")},
                required_columns=("prompt", "response_1", "response_2", "preference_strength"),
                split_field="split", split_aliases=_HS2_EVAL),
        Adapter("helpsteer3", convert_helpsteer3, "HelpSteer3-Preference pairs by domain (ties filtered)",
                hub_id="nvidia/HelpSteer3", hub_config="preference",
                hub_split_aliases={"test": "validation", "val": "validation"},
                required_columns=("domain", "language", "context", "response1", "response2",
                                  "overall_preference")),
        Adapter("rewardbench", convert_rewardbench, "RewardBench v1 (Chat/Chat Hard/Safety/Reasoning)",
                hub_id="allenai/reward-bench", hub_split_aliases={"test": "filtered"},
                required_columns=("prompt", "chosen", "rejected", "subset", "id"), id_field="id"),
        Adapter("rewardbench2", convert_rewardbench2,
                "RewardBench 2 (best of 4: chosen vs each rejected; Ties for reward models)",
                hub_id="allenai/reward-bench-2", required_columns=("id", "prompt", "chosen", "rejected", "subset"),
                id_field="id"),
        Adapter("rm_bench", convert_rm_bench, "RM-Bench: 9 style pairs per item, easy/normal/hard",
                hub_id="THU-KEG/RM-Bench", hub_split_aliases={"test": "train"},
                required_columns=("id", "prompt", "chosen", "rejected"), id_field="id"),
        Adapter("judgebench", convert_judgebench, "JudgeBench GPT-4o/Claude pairs (Knowledge/Reasoning/Math/Coding)",
                hub_id="ScalerLab/JudgeBench",
                required_columns=("pair_id", "source", "question", "response_model", "response_A", "response_B",
                                  "label"), id_field="pair_id"),
        Adapter("skywork_preference", convert_skywork, "Skywork-Reward-Preference-80K-v0.2 conversations",
                hub_id="Skywork/Skywork-Reward-Preference-80K-v0.2", required_columns=("chosen", "rejected")),
        Adapter("generic", convert_generic, "any JSONL/parquet file described by data.field_map",
                uses_field_map=True),
    )
}


def get_adapter(name: str) -> Adapter:
    """The adapter registered as ``name``; a ``ConfigError`` lists the names otherwise."""
    try:
        return ADAPTERS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown preference dataset {name!r}; known: {sorted(ADAPTERS)}") from None
