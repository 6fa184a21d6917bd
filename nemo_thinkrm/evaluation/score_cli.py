"""``thinkrm score PATH [template=binary|multiclass] [dataset=NAME]``: recompute every metric from saved generations.

PATH is an eval run directory, its ``predictions.jsonl``, or any JSONL of plain rows — the
raw outputs of any judge, ours or not::

    {"id": "p1", "label": "A", "output": "…<answer>A</answer>", "section": "math", "seed": 0,
     "swapped": false}
    {"id": "p1", "label": "B", "output": "…<answer>B</answer>", "section": "math", "seed": 0,
     "swapped": true}

``id``, ``label`` and ``output`` are required; ``label`` (``A``/``B`` or an integer in −3..3
without 0) is in the order *the judge saw*. Optional: ``section``, ``seed`` (rows of one id
with different seeds are votes), ``tags``, ``output_tokens``, and the orientation —
``swapped`` (true/false) or ``order`` (``"AB"``/``0`` the pair's own order, ``"BA"``/``1``
swapped). The two orientations of one (id, seed) are kept apart and give position
consistency and JudgeBench's pair accuracy, overall and per section.

A plain row twice (same id, seed and orientation) is an error naming both lines: which one
to believe is not ours to guess. Rows that cannot be scored (no label, a label out of range,
a torn line) are skipped and counted with their file:line (``skipped_rows`` in
``metrics.json``); a file where more than half of the rows are bad is an error. Our own
prediction rows may repeat a request (a resumed run re-answers a failed one): the last wins.
Writes ``metrics.json`` and ``report.md`` next to the file and prints the headline; no model
needed.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.data.rows import check_bad_fraction, read_rows
from nemo_thinkrm.evaluation import predictions as preds
from nemo_thinkrm.evaluation.metrics import compute_metrics, parse_label
from nemo_thinkrm.evaluation.runner import write_outputs

MODES = {"binary": "binary", "multiclass": "multiclass", "reasoning_binary": "binary",
         "rationale_binary": "binary", "reasoning_multiclass": "multiclass", "rationale_multiclass": "multiclass"}
ORDERS = {"AB": False, "BA": True}
MAX_BAD_FRACTION = 0.5


class _BadRow(ValueError):
    """A plain row that cannot be scored: skipped and counted."""


def score_stage(argv: Sequence[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = [a for a in argv if "=" not in a]
    opts = dict(a.split("=", 1) for a in argv if "=" in a)
    if len(args) != 1 or set(opts) - {"template", "dataset"}:
        print("usage: thinkrm score RUN_DIR_OR_FILE.jsonl [template=binary|multiclass] [dataset=NAME]",
              file=sys.stderr)
        return 2
    path = Path(args[0])
    if path.is_dir():
        path = path / preds.FILENAME
    if not path.is_file():
        raise ConfigError(f"{path} not found")
    mode = MODES.get(opts.get("template", ""), None) if "template" in opts else None
    if "template" in opts and mode is None:
        raise ConfigError(f"template={opts['template']!r}: use binary or multiclass")
    rows, skipped = normalise_rows(read_rows(str(path), key="PATH"), mode)
    rows = list(preds.latest_per_request(rows))
    metrics = compute_metrics(rows, mode, opts.get("dataset"),
                              extra={"skipped_rows": len(skipped), "skipped": skipped[:20]})
    notes = [f"Rescored from `{path}`."]
    if skipped:
        notes.append(f"{len(skipped)} input rows were skipped as bad (first: "
                     f"{'; '.join(f'{w}: {why}' for w, why in skipped[:3])}).")
    write_outputs(path.parent, metrics, rows, f"Scores of {path.name}", notes)
    print(json.dumps({k: metrics[k] for k in ("accuracy", "flexible_accuracy", "invalid_rate", "n_samples",
                                               "n_examples", "n_order_pairs", "position_consistency",
                                               "judgebench_pair_accuracy", "skipped_rows")}, indent=2))
    return 0


def normalise_rows(table, mode: Optional[str]) -> tuple[list[dict], list[tuple[str, str]]]:
    """Prediction rows ready for ``compute_metrics`` and the (file:line, reason) of the skipped ones."""
    out, skipped = [], list(table.bad)
    first_line: dict[str, str] = {}
    for row in table:
        if "request_id" in row.data:  # ours, as ``thinkrm eval`` wrote it
            out.append(row.data)
            continue
        try:
            plain = _normalise_plain(row.data, mode)
        except _BadRow as why:
            skipped.append((row.where, str(why)))
            continue
        rid = plain["request_id"]
        if rid in first_line:
            raise ConfigError(f"{row.where}: duplicate row (id={plain['example_id']!r}, seed={plain['seed']}, "
                              f"swapped={str(plain['swapped']).lower()}) — the same as {first_line[rid]}; keep one "
                              f"row per id, seed and orientation")
        first_line[rid] = row.where
        out.append(plain)
    first = "; ".join(f"{w}: {why}" for w, why in skipped[:3])
    check_bad_fraction(len(skipped), table.n_lines, MAX_BAD_FRACTION, str(table.path), first,
                       hint="plain rows need id, label and output")
    if skipped:
        logging.getLogger(__name__).warning("%s: skipped %d of %d rows as bad; first: %s", table.path, len(skipped),
                                            table.n_lines, first)
    return out, skipped


def _orientation(row: dict) -> bool:
    """True when the judge saw the pair swapped: from ``swapped`` and/or ``order`` (they must agree)."""
    swapped, order = row.get("swapped"), row.get("order")
    found = None
    if swapped is not None:
        if not isinstance(swapped, bool):
            raise _BadRow(f"'swapped' must be true or false, got {swapped!r}")
        found = swapped
    if order is not None:
        if isinstance(order, str) and order.strip().upper() in ORDERS:
            by_order = ORDERS[order.strip().upper()]
        elif not isinstance(order, bool) and order in (0, 1):
            by_order = bool(order)
        else:
            raise _BadRow(f"'order' must be 'AB'/'BA' or 0/1, got {order!r}")
        if found is not None and found != by_order:
            raise _BadRow(f"'swapped' ({swapped}) and 'order' ({order!r}) disagree")
        found = by_order
    return bool(found)


def _normalise_plain(row: dict, mode: Optional[str]) -> dict[str, Any]:
    missing = [k for k in ("id", "label", "output") if row.get(k) is None]
    if missing:
        raise _BadRow(f"lacks {missing}; plain rows need id, label and output")
    if not isinstance(row["output"], str):
        raise _BadRow(f"'output' must be a string, got {type(row['output']).__name__}")
    seed = row.get("seed")
    if seed is None:
        seed = 0
    if isinstance(seed, bool) or not isinstance(seed, (int, float)) or int(seed) != seed:
        raise _BadRow(f"'seed' must be an integer, got {seed!r}")
    row_mode = mode or ("binary" if str(row["label"]).strip().upper() in ("A", "B") else "multiclass")
    try:
        label = parse_label(row["label"], row_mode)
    except ConfigError as exc:
        raise _BadRow(str(exc)) from None
    swapped = _orientation(row)
    return {"request_id": f"{row['id']}:o{int(swapped)}:s{int(seed)}", "example_id": str(row["id"]),
            "seed": int(seed), "label": label, "mode": row_mode, "section": row.get("section") or "all",
            "tags": row.get("tags") or {}, "output": row["output"], "output_tokens": row.get("output_tokens"),
            "swapped": swapped, "error": row.get("error")}
