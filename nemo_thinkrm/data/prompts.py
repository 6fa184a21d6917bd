"""Policy prompt files for pairwise RLHF: a ``prompt`` text, ``messages`` ending with the user turn,
or an HH-RLHF row (its ``chosen`` transcript up to the last ``Human:`` turn).

Read through ``data/rows.py`` like every other data file: torn lines and rows of no known form
are skipped and counted with their file:line; a file where more than ``max_bad_fraction`` of
the rows are unusable is an error.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Optional

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.data.records import check_message
from nemo_thinkrm.data.rows import REASONS_SHOWN, check_bad_fraction, read_rows

logger = logging.getLogger(__name__)

Messages = list[dict]


def hh_rlhf_messages(text: str) -> Messages:
    """Anthropic HH-RLHF's ``"\\n\\nHuman: …\\n\\nAssistant: …"`` transcript → messages up to the last
    human turn (the final assistant reply is what the policy will write)."""
    parts = re.split(r"\n\n(Human|Assistant): ", "\n\n" + text.strip())
    msgs = [{"role": "user" if role == "Human" else "assistant", "content": content.strip()}
            for role, content in zip(parts[1::2], parts[2::2])]
    while msgs and msgs[-1]["role"] != "user":
        msgs.pop()
    return msgs


def prompt_messages(row: Any) -> tuple[Optional[Messages], str]:
    """(messages, "") for a usable row, else (None, why)."""
    if not isinstance(row, dict):
        return None, "not a JSON object"
    if isinstance(row.get("prompt"), str) and row["prompt"].strip():
        return [{"role": "user", "content": row["prompt"]}], ""
    msgs = row.get("messages")
    if msgs is None and isinstance(row.get("chosen"), str) and "\n\nHuman:" in "\n\n" + row["chosen"]:
        msgs = hh_rlhf_messages(row["chosen"])
    if msgs is None:
        return None, "no 'prompt' text, 'messages' or HH-RLHF 'chosen' transcript"
    if not isinstance(msgs, list) or not msgs:
        return None, "'messages' must be a non-empty list of {role, content} turns"
    try:
        msgs = [check_message(m, f"messages[{i}]") for i, m in enumerate(msgs)]
    except ValueError as exc:
        return None, f"'messages' must be a list of {{role, content}} turns: {exc}"
    if msgs[-1]["role"] != "user":
        return None, f"'messages' must end with the user turn, ends with {msgs[-1]['role']!r}"
    return msgs, ""


def load_prompts(path: str, max_bad_fraction: float = 0.5) -> list[Messages]:
    """Chat prompts of a file, glob or directory (key ``prompt_path``)."""
    table = read_rows(path, key="prompt_path")
    out, bad = [], list(table.bad)
    for row in table:
        msgs, why = prompt_messages(row.data)
        if msgs is None:
            bad.append((row.where, why))
        else:
            out.append(msgs)
    first = "; ".join(f"{where}: {why}" for where, why in bad[:REASONS_SHOWN])
    if not out:
        raise ConfigError(f"{path}: no usable prompts ('prompt' text, 'messages' ending with the user turn, or "
                          f"an HH-RLHF 'chosen' transcript) in {table.n_lines} rows; first: {first}")
    check_bad_fraction(len(bad), table.n_lines, max_bad_fraction, f"prompt file {path}", first)
    if bad:
        logger.warning("%s: skipped %d of %d rows without a usable prompt; first: %s", path, len(bad),
                       table.n_lines, first)
    return out
