"""RM-Bench's own summary: accuracy at each style difficulty, and the mean over its four domains.

THU-KEG/RM-Bench (README, "how to compute the accuracy") compares each item's 3 chosen and
3 rejected responses in a 3×3 matrix: *hard* is the mean of the upper-right cells (the chosen
response less styled than the rejected one), *normal* the diagonal, *easy* the lower-left.
The adapter (``data/adapters.py: convert_rm_bench``) emits the 9 cells of every item as pairs
tagged ``difficulty``, so the per-difficulty accuracy of the shared roll-up is exactly that
triangle mean when every item is complete. The README's "RM-Bench-All" figures are the mean of
the chat, math, code and safety accuracies (e.g. DPSK-R1: 84.24, 72.66, 93.59, 90.65 → 85.28).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from nemo_thinkrm.data.adapters import RM_BENCH_SECTIONS

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
