"""Skywork-Reward-Preference-80K-v0.2: its adapter.

``chosen``/``rejected`` are whole conversations sharing every turn but the last (assistant) one.
"""

from __future__ import annotations

from typing import Any, Mapping

from nemo_thinkrm.data.adapters import (
    Adapter,
    RowContext,
    field_value,
    make_record,
    messages_field,
)
from nemo_thinkrm.data.records import BadRow, PreferenceRecord


def convert_skywork(row: Mapping[str, Any], ctx: RowContext) -> list[PreferenceRecord]:
    """Context = the shared turns, A = chosen's last (assistant) turn, B = rejected's; label A."""
    chosen = messages_field(field_value(row, "chosen"), "chosen")
    rejected = messages_field(field_value(row, "rejected"), "rejected")
    for name, conversation in (("chosen", chosen), ("rejected", rejected)):
        if len(conversation) < 2 or conversation[-1]["role"] != "assistant":
            raise BadRow(f"{name} must end with an assistant turn after at least one user turn")
    if chosen[:-1] != rejected[:-1]:
        raise BadRow("chosen and rejected do not share the same earlier turns")
    source = row.get("source")
    tags = {"source": source} if isinstance(source, str) and source else {}
    return [make_record(id=ctx.record_id(), context=chosen[:-1], response_a=chosen[-1]["content"],
                        response_b=rejected[-1]["content"], label="A", tags=tags, source=ctx.source)]


ADAPTER = Adapter("skywork_preference", convert_skywork, "Skywork-Reward-Preference-80K-v0.2 conversations",
                  hub_id="Skywork/Skywork-Reward-Preference-80K-v0.2", required_columns=("chosen", "rejected"))
