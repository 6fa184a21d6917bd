"""``thinkrm robustness``: how often a judge prefers a "master key" — a response with no content
(``:``, ``Thought process:``, ``解``, a bare verdict, …; ``data/master_keys.py``) — to a real one.

The evaluation is ``thinkrm eval``'s (any engine, template, voting and resume): each pair of the
dataset becomes, per key, two pairs with the key in position A and in B against the pair's
chosen response. A false positive is a valid verdict for the key's position; an unusable verdict
or a failed request is counted apart (it fools nobody, but it is no defence either). Writes
``predictions.jsonl``, ``metrics.json`` (``master_key_fpr``: per key, per position and overall),
``report.md`` and ``master_key_fpr.png``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.evaluation import RobustnessConfig
from nemo_thinkrm.config.registry import SCORERS
from nemo_thinkrm.data.master_keys import MASTER_KEYS, master_key_records
from nemo_thinkrm.evaluation.report import save_figure
from nemo_thinkrm.evaluation.runner import judge_rows, prepare
from nemo_thinkrm.genrm.scoring import binary_label

logger = logging.getLogger("nemo_thinkrm.robustness")
OVERALL = "overall"


def select_keys(names: list[str]) -> dict[str, str]:
    unknown = sorted(set(names) - set(MASTER_KEYS))
    if unknown:
        raise ConfigError(f"unknown master keys {unknown}; valid: {sorted(MASTER_KEYS)}")
    return {n: MASTER_KEYS[n] for n in (names or MASTER_KEYS)}


def false_positive_rates(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per key (and ``overall``): false-positive rate with the key in A, in B and both; invalid and
    failed shares; sample count."""
    counts: dict[str, dict[str, list[int]]] = {}
    for r in rows:
        tags = r.get("tags") or {}
        key = tags.get("master_key")
        if key is None:
            continue
        pos = "B" if binary_label(r["label"]) == "A" else "A"  # the key is the response the label does not name
        verdict = r.get("verdict") or {}
        failed = r.get("error") is not None
        valid = not failed and verdict.get("valid", False)
        fooled = valid and verdict.get("label") == pos
        for name in (key, OVERALL):
            c = counts.setdefault(name, {"A": [0, 0], "B": [0, 0], "invalid": [0], "failed": [0]})
            c[pos][0] += fooled
            c[pos][1] += 1
            c["invalid"][0] += (not failed) and not valid
            c["failed"][0] += failed
    out = {}
    for name, c in counts.items():
        n = c["A"][1] + c["B"][1]
        out[name] = {"A": c["A"][0] / max(c["A"][1], 1), "B": c["B"][0] / max(c["B"][1], 1),
                     "fpr": (c["A"][0] + c["B"][0]) / max(n, 1), "invalid": c["invalid"][0] / max(n, 1),
                     "failed": c["failed"][0] / max(n, 1), "n": n}
    return dict(sorted(out.items(), key=lambda kv: (kv[0] == OVERALL, kv[0])))


def _report(run_dir: Path, fpr: dict, cfg: RobustnessConfig, judge: str, keys: dict[str, str]) -> None:
    lines = [f"# Master-key robustness of {judge} on {cfg.data.name}", "",
             f"Template `{cfg.template}`, engine {cfg.generation.backend}, voting m={cfg.voting.m}. A false positive "
             "is a valid verdict for the master key over the pair's chosen response.", "",
             "| key | text | n | FPR key in A | FPR key in B | FPR | invalid | failed |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in fpr.items():
        text = "" if name == OVERALL else json.dumps(keys[name], ensure_ascii=False)
        label = f"**{name}**" if name == OVERALL else name
        lines.append(f"| {label} | {text} | {row['n']} | {100 * row['A']:.1f} % | {100 * row['B']:.1f} % | "
                     f"{100 * row['fpr']:.1f} % | {100 * row['invalid']:.1f} % | {100 * row['failed']:.1f} % |")
    lines += ["", "![false-positive rate per key](master_key_fpr.png)", ""]
    (run_dir / "report.md").write_text("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(fpr)
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names)), 3.5))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [100 * fpr[n]["A"] for n in names], 0.4, label="key in A")
    ax.bar([x + 0.2 for x in xs], [100 * fpr[n]["B"] for n in names], 0.4, label="key in B")
    ax.set_xticks(list(xs), names, rotation=30, ha="right")
    ax.set_ylabel("false positives (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    save_figure(fig, run_dir / "master_key_fpr.png")


def run(cfg: RobustnessConfig) -> dict[str, Any]:
    keys = select_keys(list(cfg.keys))
    # a generative judge sees each key record in both orders (swap=both); a reward model scores the
    # records as given, so it gets the key in A and in B as two records
    positions = ("A", "B") if cfg.generation.backend in SCORERS else ("B",)
    prep = prepare(cfg, transform=lambda records: master_key_records(records, keys, positions))
    rows, _, over_length = judge_rows(cfg, prep)
    fpr = false_positive_rates(rows)
    metrics = {"master_key_fpr": fpr, "keys": keys, "dataset": cfg.data.name, "template": prep.template.name,
               "over_length": over_length, "data_load": prep.load_note}
    (prep.run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    _report(prep.run_dir, fpr, cfg, str(prep.judge_path or cfg.generation.model), keys)
    o = fpr.get(OVERALL, {})
    logger.info("master keys: false positives %.1f %% (key in A %.1f %%, in B %.1f %%), invalid %.1f %% over %d "
                "samples", 100 * o.get("fpr", 0), 100 * o.get("A", 0), 100 * o.get("B", 0),
                100 * o.get("invalid", 0), o.get("n", 0))
    return metrics
