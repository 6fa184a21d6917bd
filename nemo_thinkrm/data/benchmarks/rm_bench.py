"""RM-Bench (``THU-KEG/RM-Bench``): its adapter and its own summary.

``chosen``/``rejected`` hold 3 styles each (0 concise, 1 detailed plain text, 2 detailed markdown).
The README of THU-KEG/RM-Bench ("how to compute the accuracy") compares them in a 3×3 matrix, rows =
chosen style i, columns = rejected style j: *hard* is the upper-right triangle (i < j: the chosen
answer is less styled than the rejected one), *normal* the diagonal, *easy* the lower-left (i > j).
The adapter emits the 9 cells of every item as pairs tagged ``difficulty``, so the per-difficulty
accuracy of the shared roll-up is exactly that triangle mean when every item is complete
(``extra_metrics``). The README's "RM-Bench-All" figures are the mean of the chat, math, code and
safety accuracies (e.g. DPSK-R1: 84.24, 72.66, 93.59, 90.65 → 85.28).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.data.adapters import (
    Adapter,
    RowContext,
    make_record,
    prompt_context,
    response_list,
    text_field,
)
from nemo_thinkrm.data.records import BadRow, PreferenceRecord


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


def rm_bench_domain(row: Mapping[str, Any], file: Optional[str]) -> str:
    """The row's ``domain``, or — RM-Bench's per-domain files (``data/chat_filtered.json``,
    ``safety-refuse_filtered.json``, …) have no such field; only ``total_dataset.json`` does —
    the domain the file is named after, as RM-Bench's own scripts read one file per domain."""
    if row.get("domain") is not None:
        domain = text_field(row, "domain")
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
    context = prompt_context(row.get("prompt"), "prompt")
    n = len(RM_BENCH_STYLES)
    chosen, rejected = response_list(row, "chosen", n), response_list(row, "rejected", n)
    return [make_record(id=ctx.record_id(f":c{i}r{j}"), context=context, response_a=chosen[i],
                        response_b=rejected[j], label="A", section=RM_BENCH_SECTIONS[domain],
                        tags={"domain": domain, "difficulty": rm_bench_difficulty(i, j)}, source=ctx.source)
            for i in range(len(chosen)) for j in range(len(rejected))]


ADAPTER = Adapter("rm_bench", convert_rm_bench, "RM-Bench: 9 style pairs per item, easy/normal/hard",
                  hub_id="THU-KEG/RM-Bench", hub_split_aliases={"test": "train"},
                  required_columns=("id", "prompt", "chosen", "rejected"), id_field="id")


DIFFICULTIES: tuple[str, ...] = ("easy", "normal", "hard")
DOMAINS: tuple[str, ...] = tuple(dict.fromkeys(RM_BENCH_SECTIONS.values()))
"""chat, math, code, safety (both safety sub-domains report as "safety")."""


def _accuracy(rows: dict, key: str) -> Optional[float]:
    row = rows.get(key)
    return row["accuracy"] if isinstance(row, dict) and "n" in row else None


def extra_metrics(metrics: dict, rows: Sequence[dict] = ()) -> dict[str, Any]:
    """``{"rm_bench": {"easy", "normal", "hard", <domain>…, "domain_mean"}}`` (keys present in the data only)."""
    groups = metrics["groups"]
    out: dict[str, float] = {}
    for name in DIFFICULTIES:
        acc = _accuracy(groups.get("difficulty", {}), name)
        if acc is not None:
            out[name] = acc
    domains = {d: a for d in DOMAINS if (a := _accuracy(groups.get("section", {}), d)) is not None}
    out.update(domains)
    if len(domains) == len(DOMAINS):
        out["domain_mean"] = sum(domains.values()) / len(domains)
    return {"rm_bench": out}
