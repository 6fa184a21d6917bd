"""HelpSteer3 (``nvidia/HelpSteer3``, config "preference"): its adapter.

``overall_preference`` −3..3, negative = ``response1`` better; 0 (a tie) is filtered; the domain
is the section.
"""

from __future__ import annotations

from typing import Any, Mapping

from nemo_thinkrm.data.adapters import (
    Adapter,
    RowContext,
    field_value,
    label_of_strength,
    make_record,
    messages_field,
    signed_strength,
    text_field,
)
from nemo_thinkrm.data.records import PreferenceRecord


def convert_helpsteer3(row: Mapping[str, Any], ctx: RowContext) -> list[PreferenceRecord]:
    """A = ``response1``, B = ``response2``; strength = ``overall_preference``; section = domain."""
    strength = signed_strength(row, "overall_preference")
    domain, language = text_field(row, "domain"), text_field(row, "language")
    return [make_record(id=ctx.record_id(), context=messages_field(field_value(row, "context"), "context"),
                        response_a=text_field(row, "response1"), response_b=text_field(row, "response2"),
                        label=label_of_strength(strength), strength=strength, section=domain,
                        tags={"domain": domain, "language": language}, source=ctx.source)]


ADAPTER = Adapter("helpsteer3", convert_helpsteer3, "HelpSteer3-Preference pairs by domain (ties filtered)",
                  hub_id="nvidia/HelpSteer3", hub_config="preference",
                  hub_split_aliases={"test": "validation", "val": "validation"},
                  required_columns=("domain", "language", "context", "response1", "response2",
                          "overall_preference"))
