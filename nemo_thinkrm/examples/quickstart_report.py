"""The quickstart's ``report.md`` and its PNG curves: what a person reads after ``make quickstart``.

Only formatting lives here; every number comes from the summary that ``quickstart.collect``
read back from the run directories of this run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from nemo_thinkrm.config.quickstart import QuickstartConfig
from nemo_thinkrm.evaluation.report import save_figure

STAGE_LABELS = {"untrained": "untrained (random init)", "sft": "after warm-up SFT", "grpo": "after GRPO"}


def stage_labels(cfg: QuickstartConfig) -> dict[str, str]:
    if cfg.pretrained is None:
        return STAGE_LABELS
    return {**STAGE_LABELS, "untrained": f"{cfg.pretrained}, zero-shot"}


def _pct(x: Optional[float]) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def render_report(cfg: QuickstartConfig, s: dict[str, Any], root: Path) -> str:
    labels = stage_labels(cfg)
    plots = make_plots(s, root / "plots", labels)
    ev, pol, t = s["eval"], s["policy"], s["timings"]
    m = cfg.voting_m
    judge = (f"The judge is a {cfg.model.num_layers}-layer, {cfg.model.hidden_size}-wide Llama-shaped model trained "
             "from scratch." if cfg.pretrained is None else
             f"The judge starts from the real pretrained model `{cfg.pretrained}` (`thinkrm models fetch`), in its own "
             f"chat template and tokenizer, with the `{cfg.template}` judge template.")
    lines = [
        "# nemo-thinkrm quickstart report", "",
        f"The whole Think-RM pipeline at toy scale on CPU, in {s['seconds'] / 60:.1f} minutes. The task: "
        f"*which of two responses gets `a + b` right* (0 ≤ a, b ≤ {cfg.max_operand}; "
        f"the wrong one is off by 1-{cfg.max_offset}"
        f"{'; responses explain their working' if cfg.wording == 'explained' else ''}). "
        f"{cfg.heldout_pairs} held-out pairs never occur in training, in either order; the arithmetic facts "
        "are shared, so the judge must recompute, compare and conclude on pairs it has not seen.", "",
        f"{judge} Its warm-up traces come from a **scripted teacher** (a rule that writes the reasoning a "
        "careful judge would), standing in for the strong LLM teacher Think-RM uses.", "",
        "## Held-out accuracy of the judge", "",
        f"| judge | accuracy (mean of {m} sample{'s' * (m > 1)}, T={cfg.eval_temperature:g}) | voting@{m} | "
        "invalid verdicts |",
        "|---|---|---|---|",
    ]
    for key, label in labels.items():
        e = ev[key]
        lines.append(f"| {label} | {_pct(e['accuracy'])} | {_pct(e['voting'])} | {_pct(e['invalid_rate'])} |")
    fpr = s["robustness"]
    o = fpr["overall"]
    worst = max((k for k in fpr if k != "overall"), key=lambda k: fpr[k]["fpr"])
    lines += ["", f"Chance is 50 %. {ev['sft']['n_pairs']} pairs × {m} sample{'s' * (m > 1)} per judge.", "",
              "| judge | master-key false positives | key shown as A | key shown as B | invalid | worst key |",
              "|---|---|---|---|---|---|",
              f"| after GRPO | {_pct(o['fpr'])} of {o['n']} | {_pct(o['A'])} | {_pct(o['B'])} | "
              f"{_pct(o['invalid'])} | `{worst}` {_pct(fpr[worst]['fpr'])} |", "",
              f"A master key replaces the wrong response of a held-out pair with a content-free one (`:`, "
              f"`Thought process:`, `解`, a bare `<answer>A</answer>`, … {len(fpr) - 1} keys, in both positions; "
              "`thinkrm robustness`, docs/robustness.md); a false positive is a verdict for it.", ""]
    if pol is not None:
        lines += policy_section(cfg, pol, ev["grpo"]["accuracy"])
    lines += ["## Curves", ""]
    lines += [f"![{p.stem}](plots/{p.name})" for p in plots]
    lines += ["", "## Where everything is", "", "| artefact | path |", "|---|---|"]
    for name, what in [("data/", "task pairs (train / held-out), policy data"),
                       ("judge_init/, policy_init/", "the random 🤗 starting checkpoints"),
                       ("synth/sft.jsonl", "scripted-teacher traces"),
                       ("sft/", "warm-up SFT run: config.yaml, metrics.jsonl, checkpoints/"),
                       ("grpo/", "GRPO run"), ("eval_untrained/, eval_sft/, eval_grpo/",
                                               "evaluations: report.md, predictions.jsonl, judge_hf/"),
                       ("robustness/", "master-key false positives: report.md, master_key_fpr.png"),
                       ("policy_sft/, pairwise_rlhf/, pairwise_rlhf_rm/", "the policy's runs"),
                       ("rm/", "the Bradley-Terry reward model (the baseline run's judge)"),
                       ("logs/", "each stage's full log, the judge server logs"),
                       ("summary.json", "every number above")]:
        if (cfg.pretrained is not None and name.startswith("judge_init")) or (pol is None and "policy" in name) \
                or (name == "rm/" and not (pol and pol.get("after_rm"))):
            continue
        lines.append(f"| {what} | `{root / name.split(',')[0]}`{' …' if ',' in name else ''} |")
    lines += ["", "## Time per stage", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in t.items()]
    return "\n".join(lines) + "\n"


def policy_section(cfg: QuickstartConfig, pol: dict[str, Any], genrm_accuracy: float) -> list[str]:
    """``genrm_accuracy``: the served judge's held-out accuracy, the GRPO row of the judge table."""
    before, genrm, bt = pol["before"], pol["after"], pol.get("after_rm")
    lines = ["## Pairwise RLHF of a tiny policy", "",
             f"A {cfg.policy_model.num_layers}-layer policy is fine-tuned on answers with mistakes of its own per "
             f"question (one wrong answer each, given {100 * cfg.policy_error_rate:.0f} % of the time on average, "
             f"more on some questions than on others), then aligned for {cfg.rlhf_iters} steps of 16 questions × 4 "
             "samples: the GRPO judge, served by a local vLLM CPU server, compares every pair of a question's "
             "samples in both orders and the preference matrix becomes the advantages."
             + (" Beside it, the same run (same policy, prompts, steps and settings) with a Bradley-Terry reward "
                "model trained on the labels of all train pairs as the judge (`judge.kind=reward_model`: each "
                "sample scored once, d_ij = r_i − r_j)." if bt else ""), "",
             "| policy | greedy answers right (checked by rule, not by the judge) | the judge, held out |",
             "|---|---|---|",
             f"| after SFT on answers with mistakes | {_pct(before['accuracy'])} of {before['n']} questions | |",
             f"| after pairwise RLHF, GenRM judge (the GRPO judge above) | **{_pct(genrm['accuracy'])}** | "
             f"{_pct(genrm_accuracy)} (T = {cfg.eval_temperature:g}) |"]
    if bt:
        lines.append(f"| after pairwise RLHF, Bradley-Terry judge | **{_pct(bt['accuracy'])}** | "
                     f"{_pct(bt.get('judge_accuracy'))} |")
    return lines + ["", "The policy answers the same 100 questions it is aligned on: what is measured is whether "
                    "the judge's preferences move its greedy answers to the right sums. On a cluster the same "
                    "commands run the 8B recipes (README.md).", ""]


def make_plots(s: dict[str, Any], out: Path, labels: dict[str, str] = STAGE_LABELS) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(STAGE_LABELS)
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [100 * s["eval"][n]["accuracy"] for n in names], 0.4, label="accuracy")
    ax.bar([i + 0.2 for i in x], [100 * (s["eval"][n]["voting"] or 0) for n in names], 0.4, label="voting@m")
    ax.axhline(50, color="grey", ls="--", lw=1)
    ax.set_xticks(list(x), [labels[n] for n in names])
    ax.set_ylabel("held-out accuracy %")
    ax.set_ylim(0, 100)
    ax.legend()
    paths.append(save_figure(fig, out / "heldout_accuracy.png"))

    curves = [("sft", ["loss"], "warm-up SFT: response-only loss"),
              ("grpo", ["reward_mean", "accuracy", "invalid_rate"], "GRPO: reward and verdict accuracy per step"),
              ("pairwise_rlhf", ["kl", "response_length"], "pairwise RLHF (GenRM judge): KL, response length"),
              ("pairwise_rlhf_rm", ["kl", "reward_mean"], "pairwise RLHF (Bradley-Terry judge): KL, mean reward")]
    for key, fields, title in curves:
        rows = s["train"].get(key) or []
        if not rows:
            continue
        fig, axes = plt.subplots(1, len(fields), figsize=(4 * len(fields), 3))
        axes = axes if len(fields) > 1 else [axes]
        for ax, f in zip(axes, fields):
            ax.plot([r["step"] for r in rows if f in r], [r[f] for r in rows if f in r], label=f)
            if key == "sft" and s.get("val"):
                ax.plot([r["step"] for r in s["val"]], [r["val_loss"] for r in s["val"]], "o-", label="val_loss")
                ax.set_yscale("log")
            ax.set_xlabel("step")
            ax.set_title(f, fontsize=9)
            ax.legend(fontsize=8)
        fig.suptitle(title, fontsize=10)
        paths.append(save_figure(fig, out / f"{key}.png"))
    return paths
