"""``thinkrm self-train``: GRAM-R² self-training of a reasoning judge, round by round.

"Self-Training Generative Foundation Reward Models for Reward Reasoning" (GRAM-R²) needs a
teacher's traces for a few pairs only. A *preference-proving* model, shown the pair and which
response is better, learns to write the rationale for that preference; it then writes rationales
for pairs that have a label and none, and, round after round, for unlabeled pairs the judge itself
labeled. Every step below is an existing stage (``runtime/pipeline.py``), so a round is exactly what
a user could run by hand:

round 0  teacher ``synth`` on the traced pairs with the proving template → proving rows, and the
         same traces under the judge template (the judge never sees the label) → judge rows;
         ``sft`` the proving model; the proving model ``synth``\\ s the labeled pairs' rationales;
         ``sft`` judge_0 on traced + labeled rows; ``eval`` on the held-out pairs.
round k  ``eval`` judge_{k-1} on the unlabeled pairs, ``votes`` seeds in both orders; keep the
         confident, position-consistent verdicts (``genrm/pseudo_labels.py``) as labels; the proving
         model writes their rationales (``synth``); ``sft`` judge_k on the labeled rows plus this
         round's, from the start model (``round_start=start``) or from judge_{k-1}; ``eval``.
baseline judge_0's data alone for as many SFT steps as judge_K had in all (the report's comparison).

The unlabeled pairs' own labels are read only to report how often the pseudo-labels are right.
Each step leaves a done-marker, so a killed run resumes at its round and step, and a killed SFT or
eval resumes inside its own run directory.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

from nemo_thinkrm.config.errors import ConfigError, InjectedFault
from nemo_thinkrm.config.self_train import SelfTrainConfig
from nemo_thinkrm.data.preference import load_configured, load_preference_data
from nemo_thinkrm.data.synthetic import make_task_split
from nemo_thinkrm.evaluation import predictions as preds
from nemo_thinkrm.genrm import load_template
from nemo_thinkrm.genrm.pseudo_labels import pseudo_label
from nemo_thinkrm.genrm.verdict import Verdict
from nemo_thinkrm.runtime.pipeline import Pipeline
from nemo_thinkrm.training.resume import write_run_config

logger = logging.getLogger("nemo_thinkrm.self_train")

SPLITS = ("traced", "labeled", "unlabeled", "heldout")


def run(cfg: SelfTrainConfig) -> dict[str, Any]:
    check_templates(cfg)
    root = Path(cfg.run_dir)
    root.mkdir(parents=True, exist_ok=True)
    write_run_config(cfg)
    p = Pipeline(cfg, root)
    t0 = time.time()
    sizes = split_data(p)
    rounds = [round_zero(p, sizes)]
    for k in range(1, cfg.rounds + 1):
        _maybe_fail(cfg, k - 1)
        rounds.append(self_train_round(p, k))
    baseline = train_baseline(p) if cfg.baseline else None
    summary = {"seconds": round(time.time() - t0, 1), "data": sizes, "rounds": rounds, "baseline": baseline,
               "timings": {k: round(v, 1) for k, v in p.timings.items()}}
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    (root / "report.md").write_text(render_report(cfg, summary))
    last = rounds[-1]["heldout_accuracy"]
    logger.info("self-training finished in %.0f s: held-out accuracy round 0 %.1f%% → round %d %.1f%%%s; report: %s",
                summary["seconds"], 100 * rounds[0]["heldout_accuracy"], cfg.rounds, 100 * last,
                f" (labeled data alone, same steps: {100 * baseline['heldout_accuracy']:.1f}%)" if baseline else "",
                root / "report.md")
    return summary


def _maybe_fail(cfg: SelfTrainConfig, finished: int) -> None:
    if cfg.fail_after_round == finished:
        raise InjectedFault(f"fault injection: stopping after round {finished} (fail_after_round)")


def check_templates(cfg: SelfTrainConfig) -> None:
    judge, proving = load_template(cfg.template), load_template(cfg.proving_template)
    if judge.proving:
        raise ConfigError(f"template={cfg.template!r} shows the preferred response; the judge's template must not")
    if not proving.proving:
        raise ConfigError(f"proving_template={cfg.proving_template!r} does not show the preferred response "
                          "(a proving template uses the variable `preferred`)")
    if judge.mode != proving.mode:
        raise ConfigError(f"template {cfg.template!r} asks for {judge.mode} verdicts, proving_template "
                          f"{cfg.proving_template!r} for {proving.mode}")


# ------------------------------------------------------------------ data

def split_data(p: Pipeline) -> dict[str, int]:
    """The pool's pairs, shuffled once by the seed, into traced / labeled / unlabeled pair files, and
    the held-out pairs beside them (``data/<split>.jsonl``, written once)."""
    cfg, data = p.cfg, p.path("data")
    sizes_file = data / "sizes.json"
    if sizes_file.is_file():
        return json.loads(sizes_file.read_text())
    data.mkdir(parents=True, exist_ok=True)
    if cfg.task == "arithmetic":
        train, held = make_task_split(cfg.max_operand, cfg.task_pairs, cfg.heldout_pairs, seed=cfg.seed)
        pool = [_task_row(x) for x in train]
        heldout = [_task_row(x) for x in held]
    else:
        pool = [_record_row(r) for r in load_configured(cfg.pool).records]
        heldout = [_record_row(r) for r in load_configured(cfg.heldout).records]
    random.Random(cfg.seed).shuffle(pool)
    n_traced = max(1, round(cfg.traced_share * len(pool)))
    n_labeled = round(cfg.labeled_share * len(pool))
    rows = {"traced": pool[:n_traced], "labeled": pool[n_traced:n_traced + n_labeled],
            "unlabeled": pool[n_traced + n_labeled:][:cfg.unlabeled_limit], "heldout": heldout}
    if not rows["unlabeled"]:
        raise ConfigError(f"the pool's {len(pool)} pairs leave no unlabeled pairs after the traced and labeled shares")
    for name in SPLITS:
        _write_jsonl(data / f"{name}.jsonl", rows[name])
    sizes = {name: len(rows[name]) for name in SPLITS}
    sizes_file.write_text(json.dumps(sizes))  # written last: marks the split complete
    logger.info("data: %s", ", ".join(f"{n} {k}" for k, n in sizes.items()))
    return sizes


def _record_row(r) -> dict:
    return {"id": r.id, "context": [dict(m) for m in r.context], "response_a": r.response_a,
            "response_b": r.response_b, "label": r.label}


def _task_row(x) -> dict:
    return {"id": x.id, "context": [{"role": "user", "content": x.question}], "response_a": x.response_a,
            "response_b": x.response_b, "label": x.label}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    tmp.replace(path)


def _concat(out: Path, parts: list[Path]) -> int:
    rows = [line for part in parts if part.is_file() for line in part.read_text().splitlines() if line.strip()]
    tmp = out.with_name(f".tmp-{out.name}")
    tmp.write_text("".join(line + "\n" for line in rows))
    tmp.replace(out)
    return len(rows)


# ------------------------------------------------------------------ steps (each one stage)

def _pairs(path: Path) -> list[str]:
    return ["data=pairs", f"data.path={path}", "data.limit=null"]


def _model(path: Optional[str | Path]) -> list[str]:
    return [f"model.hf_path={path}"] if path is not None else []


def synth(p: Pipeline, key: str, pairs: Path, out: Path, model: Optional[str | Path], teacher: bool,
          copy_from: Optional[Path] = None) -> None:
    """Rationales for ``pairs`` from the proving template, written as judge rows (``train_template``) or,
    for the teacher's first pass, as proving rows. ``copy_from``: a synth run whose generations are
    these (the same prompts), so only the rows are written again."""
    cfg = p.cfg
    run_dir = p.path(key)
    if copy_from is not None and not (run_dir / preds.FILENAME).is_file() and not p.done(key):
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(copy_from / preds.FILENAME, run_dir / preds.FILENAME)
    as_judge = [f"train_template={cfg.template}"] if (not teacher or copy_from is not None) else []
    kind = "teacher" if teacher else "synth"
    p.stage(key, ["synth", "--config-name", cfg.recipes[kind], f"run_dir={run_dir}", *_pairs(pairs),
                  f"template={cfg.proving_template}", *as_judge, f"output={out}", f"seed={cfg.seed}",
                  *_model(model)], overrides_key=kind)


def sft(p: Pipeline, key: str, rows: Path, start: Optional[str | Path], iters: int) -> None:
    cfg = p.cfg
    p.stage(key, ["sft", "--config-name", cfg.recipes["sft"], f"run_dir={p.path(key)}",
                  f"data.train_path={rows}", f"train_iters={iters}", f"seed={cfg.seed}", *_model(start)],
            overrides_key="sft")


def evaluate(p: Pipeline, key: str, judge: Path, pairs: Path, votes: int, swap: str,
             temperature: Optional[float] = None) -> dict[str, Any]:
    cfg = p.cfg
    p.stage(key, ["eval", "--config-name", cfg.recipes["eval"], f"run_dir={p.path(key)}", *_pairs(pairs),
                  f"model.hf_path={judge}", f"template={cfg.template}", f"voting.m={votes}", f"swap={swap}",
                  f"seed={cfg.seed}", *([f"generation.temperature={temperature}"] if temperature is not None else [])],
            overrides_key="eval")
    return json.loads(p.path(key, "metrics.json").read_text())


def heldout_eval(p: Pipeline, key: str, judge: Path) -> dict[str, Any]:
    m = evaluate(p, key, judge, p.path("data", "heldout.jsonl"), p.cfg.heldout_votes, "random")
    vote = m.get("voting", {}).get(str(p.cfg.heldout_votes), {})
    return {"heldout_accuracy": m["accuracy"], "heldout_voting": vote.get("accuracy"),
            "heldout_invalid": m["invalid_rate"]}


def _rows(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else 0


# ------------------------------------------------------------------ rounds

def round_zero(p: Pipeline, sizes: dict[str, int]) -> dict[str, Any]:
    cfg, r0, data = p.cfg, p.path("round_0"), p.path("data")
    r0.mkdir(exist_ok=True)
    teacher = cfg.teacher_model or cfg.start
    synth(p, "round_0/teacher", data / "traced.jsonl", r0 / "traced_proving.jsonl", teacher, teacher=True)
    synth(p, "round_0/teacher_as_judge", data / "traced.jsonl", r0 / "traced_judge.jsonl", teacher, teacher=True,
          copy_from=p.path("round_0/teacher"))
    sft(p, "round_0/prover", r0 / "traced_proving.jsonl", cfg.start, cfg.prover_sft_iters)
    parts = [r0 / "traced_judge.jsonl"]
    if sizes["labeled"]:
        synth(p, "round_0/prover_labeled", data / "labeled.jsonl", r0 / "labeled_judge.jsonl",
              p.path("round_0/prover"), teacher=False)
        parts.append(r0 / "labeled_judge.jsonl")
    n_rows = _concat(r0 / "judge_train.jsonl", parts)
    sft(p, "round_0/judge", r0 / "judge_train.jsonl", cfg.start, cfg.judge_sft_iters)
    out = {"round": 0, "judge_rows": n_rows, "traced_rows": _rows(r0 / "traced_judge.jsonl"),
           "labeled_rows": _rows(r0 / "labeled_judge.jsonl"), "sft_steps": cfg.judge_sft_iters,
           **heldout_eval(p, "round_0/eval", p.path("round_0/judge"))}
    _log_round(p, out)
    return out


def self_train_round(p: Pipeline, k: int) -> dict[str, Any]:
    cfg, rk = p.cfg, p.path(f"round_{k}")
    previous = p.path(f"round_{k - 1}/judge")
    rk.mkdir(exist_ok=True)
    evaluate(p, f"round_{k}/label", previous, p.path("data", "unlabeled.jsonl"), cfg.votes, "both",
             temperature=cfg.label_temperature)
    books = write_pseudo_labels(p, k)
    if books["pseudo_labeled"]:
        synth(p, f"round_{k}/prover", rk / "pseudo.jsonl", rk / "pseudo_judge.jsonl", p.path("round_0/prover"),
              teacher=False)
    else:  # nothing confident enough: the round trains on the labeled rows alone
        logger.warning("round %d: no unlabeled pair passed the filter (min_agreement=%s)", k, cfg.min_agreement)
        _write_jsonl(rk / "pseudo_judge.jsonl", [])
    n_rows = _concat(rk / "judge_train.jsonl", [p.path("round_0/judge_train.jsonl"), rk / "pseudo_judge.jsonl"])
    sft(p, f"round_{k}/judge", rk / "judge_train.jsonl", previous if cfg.round_start == "previous" else cfg.start,
        cfg.round_sft_iters)
    out = {"round": k, **books, "pseudo_rows": _rows(rk / "pseudo_judge.jsonl"), "judge_rows": n_rows,
           "sft_steps": round_steps(cfg, k),
           **heldout_eval(p, f"round_{k}/eval", p.path(f"round_{k}/judge"))}
    _log_round(p, out)
    return out


def write_pseudo_labels(p: Pipeline, k: int) -> dict[str, Any]:
    """The judge's verdicts on the unlabeled pairs → the pairs it labels confidently and consistently
    (``round_k/pseudo.jsonl``), with the round's books (``round_k/pseudo_summary.json``)."""
    cfg, rk = p.cfg, p.path(f"round_{k}")
    summary_file = rk / "pseudo_summary.json"
    if p.done(f"round_{k}/pseudo") and summary_file.is_file():
        return json.loads(summary_file.read_text())
    t0 = time.time()
    verdicts: dict[str, dict[bool, list[Verdict]]] = defaultdict(lambda: {False: [], True: []})
    for row in preds.read_rows(p.path(f"round_{k}/label", preds.FILENAME)):
        v = row["verdict"]
        verdicts[row["example_id"]][bool(row["swapped"])].append(Verdict(v["label"], v.get("strength"), v["valid"]))
    records = {r.id: r for r in load_preference_data("generic", path=str(p.path("data", "unlabeled.jsonl")),
                                                      field_map=_PAIR_FIELDS).records}
    kept_rows, right, agreement = [], 0, []
    for example_id in sorted(verdicts):
        both = verdicts[example_id]
        if not both[False] or not both[True] or example_id not in records:
            continue
        decision = pseudo_label(both[False], both[True], cfg.min_agreement)
        agreement.append(decision.agreement)
        if not decision.kept:
            continue
        rec = records[example_id]
        # verdicts are read in the shown-as-is orientation (rec.chosen shown as A); the label comes from them
        kept_rows.append({"id": example_id.split(":", 1)[1], "context": [dict(m) for m in rec.context],
                          "response_a": rec.chosen,
                          "response_b": rec.rejected, "label": decision.label})
        right += decision.label == "A"  # the hidden label, read for this count only
    _write_jsonl(rk / "pseudo.jsonl", kept_rows)
    books = {"unlabeled_judged": len(agreement), "pseudo_labeled": len(kept_rows),
             "kept_share": len(kept_rows) / max(len(agreement), 1),
             "pseudo_accuracy": right / len(kept_rows) if kept_rows else None,
             "mean_agreement": sum(agreement) / max(len(agreement), 1), "min_agreement": cfg.min_agreement}
    summary_file.write_text(json.dumps(books, indent=2))
    p.mark_done(f"round_{k}/pseudo", time.time() - t0)
    logger.info("round %d: %d of %d unlabeled pairs pseudo-labeled (%.1f%% right against the hidden labels)", k,
                len(kept_rows), len(agreement), 100 * (books["pseudo_accuracy"] or 0))
    return books


_PAIR_FIELDS = {"id": "id", "context": "context", "response_a": "response_a", "response_b": "response_b",
                "label": "label"}
"""The pair files' columns (``conf/data/pairs.yaml``)."""


def round_steps(cfg: SelfTrainConfig, k: int) -> int:
    """SFT steps behind round k's judge, counted from the start model."""
    if k == 0:
        return cfg.judge_sft_iters
    return cfg.round_sft_iters if cfg.round_start == "start" else cfg.judge_sft_iters + k * cfg.round_sft_iters


def train_baseline(p: Pipeline) -> dict[str, Any]:
    """Judge_0's data alone, for as many SFT steps as the last round's judge had in all (round 0 itself
    when that is as many as round 0 had)."""
    cfg = p.cfg
    steps = round_steps(cfg, cfg.rounds)
    if steps == cfg.judge_sft_iters:
        return {"sft_steps": steps, "same_as_round_0": True,
                **heldout_eval(p, "round_0/eval", p.path("round_0/judge"))}
    sft(p, "baseline/judge", p.path("round_0/judge_train.jsonl"), cfg.start, steps)
    return {"sft_steps": steps, **heldout_eval(p, "baseline/eval", p.path("baseline/judge"))}


def _log_round(p: Pipeline, out: dict[str, Any]) -> None:
    metrics = p.path("metrics.jsonl")
    seen = {json.loads(line)["round"] for line in metrics.read_text().splitlines()} if metrics.is_file() else set()
    if out["round"] not in seen:
        with open(metrics, "a") as f:
            f.write(json.dumps({"kind": "round", **out}) + "\n")
    logger.info("round %d: held-out accuracy %.1f%% (%d judge rows, %d SFT steps)", out["round"],
                100 * out["heldout_accuracy"], out["judge_rows"], out["sft_steps"])


# ------------------------------------------------------------------ report

def _pct(x: Optional[float]) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def render_report(cfg: SelfTrainConfig, s: dict[str, Any]) -> str:
    d = s["data"]
    lines = [
        "# Self-training report (GRAM-R²)", "",
        f"Pool: {d['traced']} traced pairs (a teacher's rationales), {d['labeled']} labeled pairs without "
        f"rationales, {d['unlabeled']} unlabeled pairs (their labels hidden: read only for the pseudo-label "
        f"accuracy column); {d['heldout']} held-out pairs. Judge template `{cfg.template}`, proving template "
        f"`{cfg.proving_template}`. Pseudo-labels: {cfg.votes} verdicts per order in both orders at temperature "
        f"{cfg.label_temperature}, kept when ≥ {cfg.min_agreement:.0%} agree and each order's majority agrees.", "",
        "| round | pseudo-labeled | kept share | pseudo-label accuracy | judge SFT rows | SFT steps | held-out "
        f"accuracy | voting@{cfg.heldout_votes} |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s["rounds"]:
        lines.append(f"| {r['round']} | {r.get('pseudo_labeled', '—')} | {_pct(r.get('kept_share'))} | "
                     f"{_pct(r.get('pseudo_accuracy'))} | {r['judge_rows']} | {r['sft_steps']} | "
                     f"{_pct(r['heldout_accuracy'])} | {_pct(r['heldout_voting'])} |")
    b = s["baseline"]
    if b:
        name = "labeled data alone (= round 0)" if b.get("same_as_round_0") else "labeled data alone"
        lines.append(f"| {name} | — | — | — | {s['rounds'][0]['judge_rows']} | {b['sft_steps']} | "
                     f"{_pct(b['heldout_accuracy'])} | {_pct(b['heldout_voting'])} |")
    lines += ["", "Held-out accuracy per round:", "", "```"]
    for r in s["rounds"]:
        acc = r["heldout_accuracy"]
        lines.append(f"round {r['round']:>2} {'#' * round(50 * acc):<50} {100 * acc:5.1f} %")
    if b:
        lines.append(f"baseline {'#' * round(50 * b['heldout_accuracy']):<50} {100 * b['heldout_accuracy']:5.1f} %")
    lines += ["```", "", f"Ran in {s['seconds']:.0f} s (steps done earlier count their first run's time):", ""]
    lines += [f"- `{k}`: {v:.0f} s" for k, v in s["timings"].items()]
    return "\n".join(lines) + "\n"
