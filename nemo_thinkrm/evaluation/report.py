"""``report.md`` + plots: what a person reads after an evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional


def _pct(x: Optional[float]) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def write_report(run_dir: Path, metrics: dict[str, Any], title: str, notes: list[str]) -> Path:
    plots = _plots(run_dir, metrics)
    lines = [f"# {title}", ""]
    lines += notes + [""]
    lines += ["| metric | value |", "|---|---|",
              f"| accuracy (strict, invalid = 0) | {_pct(metrics['accuracy'])} |",
              f"| accuracy (flexible, invalid = 0.5) | {_pct(metrics['flexible_accuracy'])} |",
              f"| invalid verdicts | {_pct(metrics['invalid_rate'])} % |",
              f"| samples / pairs | {metrics['n_samples']} / {metrics['n_examples']} |",
              f"| failed requests | {metrics.get('failed_requests', 0)} |"]
    if metrics.get("skipped_rows"):
        lines.append(f"| input rows skipped as bad | {metrics['skipped_rows']} |")
    if metrics.get("output_tokens"):
        ot = metrics["output_tokens"]
        lines.append(f"| output tokens mean / median | {ot['mean']:.0f} / {ot['median']:.0f} |")
    if metrics.get("position_consistency") is not None:
        lines.append(f"| pairs judged in both orders | {metrics['n_order_pairs']} |")
        lines.append(f"| position consistency | {_pct(metrics['position_consistency'])} |")
        lines.append(f"| JudgeBench pair accuracy | {_pct(metrics['judgebench_pair_accuracy'])} |")
    if metrics.get("over_length"):
        lines.append(f"| over-length pairs (not judged) | {len(metrics['over_length'])} |")
    lines.append("")
    both_orders = bool(metrics.get("n_order_pairs"))
    order_head = " both-order pairs | position consistency | JudgeBench pair acc |" if both_orders else ""
    for key, table in metrics.get("groups", {}).items():
        lines += [f"## By {key}", "", "| " + key + " | n | accuracy | flexible | invalid % |" + order_head,
                  "|---|---|---|---|---|" + ("---|---|---|" if both_orders else "")]
        for name, row in table.items():
            if name == "macro":
                lines.append(f"| **macro (mean over {row['n_groups']} {key}s)** | | {_pct(row['accuracy'])} | "
                             f"{_pct(row['flexible_accuracy'])} | {_pct(row['invalid_rate'])} |"
                             + (" | | |" if both_orders else ""))
            else:
                label = f"**{name}**" if name.startswith("AVG") else name
                order_cells = (f" {row.get('n_order_pairs', 0)} | {_pct(row.get('position_consistency'))} | "
                               f"{_pct(row.get('judgebench_pair_accuracy'))} |") if both_orders else ""
                lines.append(f"| {label} | {row['n']} | {_pct(row['accuracy'])} | {_pct(row['flexible_accuracy'])} | "
                             f"{_pct(row['invalid_rate'])} |" + order_cells)
        lines.append("")
    if metrics.get("rewardbench"):
        lines += ["## RewardBench sections (official leaderboard weighting)", "", "| section | score |", "|---|---|"]
        lines += [f"| {k} | {_pct(v)} |" for k, v in metrics["rewardbench"].items()] + [""]
    if metrics.get("rewardbench2"):
        n = metrics.get("rewardbench2_items", {})
        lines += ["## RewardBench 2 (best of 4: the chosen response must win all three comparisons)", "",
                  "| subset | items | score |", "|---|---|---|"]
        lines += [f"| {k} | {n.get(k, '')} | {_pct(v)} |" for k, v in metrics["rewardbench2"].items()] + [""]
    voting = metrics.get("voting") or {}
    if voting:
        lines += ["## Voting@m (majority of strict verdicts, tie = 0.5)", "", "| m | accuracy | flexible | invalid % |",
                  "|---|---|---|---|"]
        lines += [f"| {m} | {_pct(v['accuracy'])} | {_pct(v['flexible_accuracy'])} | {_pct(v['invalid_rate'])} |"
                  for m, v in sorted(voting.items(), key=lambda kv: int(kv[0]))] + [""]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _plots(run_dir: Path, metrics: dict[str, Any]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    sections = {k: v for k, v in metrics.get("groups", {}).get("section", {}).items() if k != "macro"}
    if sections:
        fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(sections)), 3))
        ax.bar(list(sections), [100 * v["accuracy"] for v in sections.values()], color="#4c72b0")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title("accuracy by section")
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
        out.append(save_figure(fig, run_dir / "accuracy_by_section.png"))
    voting = metrics.get("voting") or {}
    if len(voting) > 1:
        ms = sorted(int(m) for m in voting)
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.plot(ms, [100 * voting[str(m)]["accuracy"] if str(m) in voting else 100 * voting[m]["accuracy"]
                     for m in ms], marker="o")
        ax.set_xlabel("m (samples voted)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title("accuracy vs m")
        out.append(save_figure(fig, run_dir / "accuracy_vs_m.png"))
    lengths = metrics.get("_lengths")
    if lengths:
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.hist(lengths, bins=30, color="#55a868")
        ax.set_xlabel("output tokens")
        ax.set_ylabel("generations")
        ax.set_title("output length")
        out.append(save_figure(fig, run_dir / "output_length_hist.png"))
    return out


def save_figure(fig, path: Path, dpi: int = 100) -> Path:
    """Lay out, write and close a matplotlib figure (closing matters: reports draw many)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
