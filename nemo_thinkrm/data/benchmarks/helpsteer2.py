"""HelpSteer2-Preference (``nvidia/HelpSteer2``, ``data_dir="preference"``): its adapter.

``preference_strength`` −3..3, negative = ``response_1`` better; 0 (a tie) is filtered. One file
holds both splits, told apart by the row's ``split`` ("train"/"val"); ``split="test"`` /
``"validation"`` select "val". Multi-turn prompts are "{user 1}\n<extra_id_1>Assistant\n{assistant
1}\n<extra_id_1>User\n{user 2}" (HelpSteer2 dataset card).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from nemo_thinkrm.data.adapters import (
    Adapter,
    RowContext,
    label_of_strength,
    make_record,
    signed_strength,
    text_field,
    user_turn,
)
from nemo_thinkrm.data.records import DEFAULT_SECTION, BadRow, Message, PreferenceRecord


_HS2_EVAL = {"test": "val", "validation": "val"}

_HS2_TURN = re.compile(r"<extra_id_1>(User|Assistant)[ \t]*\r?\n?")


def helpsteer2_messages(prompt: str) -> list[Message]:
    """Split a HelpSteer2 prompt into messages.

    Multi-turn prompts start with the first user turn and mark every later
    turn with ``<extra_id_1>User`` / ``<extra_id_1>Assistant`` on its own line
    (HelpSteer2 dataset card); a prompt without markers is one user message.
    """
    parts = _HS2_TURN.split(prompt)
    if len(parts) == 1:
        return user_turn(prompt)
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
    strength = signed_strength(row, "preference_strength")
    return [make_record(id=ctx.record_id(), context=helpsteer2_messages(text_field(row, "prompt")),
                        response_a=text_field(row, "response_1"), response_b=text_field(row, "response_2"),
                        label=label_of_strength(strength), strength=strength, section=DEFAULT_SECTION,
                        source=ctx.source)]


ADAPTER = Adapter("helpsteer2_preference", convert_helpsteer2,
                  "HelpSteer2-Preference pairs with −3..3 strength (ties filtered)",
                  hub_id="nvidia/HelpSteer2", hub_data_dir="preference",
                  hub_split_aliases={s: "train" for s in ("test", "val", "validation", "train", "all")},
                  required_columns=("prompt", "response_1", "response_2", "preference_strength"),
                  split_field="split", split_aliases=_HS2_EVAL)
