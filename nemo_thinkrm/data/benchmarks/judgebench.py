"""JudgeBench (``ScalerLab/JudgeBench``, its released JSONL files read as they are): its adapter.

``mmlu-pro-*`` → Knowledge, ``livebench-reasoning`` → Reasoning, ``livebench-math`` → Math,
``livecodebench`` → Coding. Its pair rule (both orders judged, +1 / −1 / 0 summed) is reported for
every dataset judged in both orders, so it lives in ``genrm/scoring.py``, not here.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from nemo_thinkrm.data.adapters import (
    Adapter,
    RowContext,
    make_record,
    text_field,
    user_turn,
)
from nemo_thinkrm.data.records import BadRow, PreferenceRecord


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
    source = text_field(row, "source")
    category = judgebench_category(source)
    if category is None:
        raise BadRow(f"unknown JudgeBench source {source!r}")
    label = _JUDGEBENCH_LABELS.get(text_field(row, "label"))
    if label is None:
        raise BadRow(f"label must be 'A>B' or 'B>A', got {row.get('label')!r}")
    return [make_record(id=ctx.record_id(), context=user_turn(text_field(row, "question")),
                        response_a=text_field(row, "response_A"), response_b=text_field(row, "response_B"), label=label,
                        section=category, tags={"source": source, "response_model": text_field(row, "response_model")},
                        source=ctx.source)]


ADAPTER = Adapter("judgebench", convert_judgebench, "JudgeBench GPT-4o/Claude pairs (Knowledge/Reasoning/Math/Coding)",
                  hub_id="ScalerLab/JudgeBench",
                  required_columns=("pair_id", "source", "question", "response_model", "response_A", "response_B",
                          "label"), id_field="pair_id")
