"""``thinkrm eval``: judge a preference benchmark and write predictions, metrics and a report.

Phases (each a short function): load data → render prompts (over-length rows set
aside and reported) → judge the requests not already in ``predictions.jsonl``
(resume) chunk by chunk → score → report. Prompts are rendered and verdicts read by the one
generative judge of response pairs (``generation/judge.py: PairJudge``) that best-of-N and
pairwise RLHF ask through too; robustness and synth run these same phases.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from nemo_thinkrm.checkpoint.convert import hf_dir_for
from nemo_thinkrm.checkpoint.start import tokenizer_for
from nemo_thinkrm.config.registry import SCORERS
from nemo_thinkrm.config.evaluation import EvalConfig
from nemo_thinkrm.data.master_keys import master_key_negatives
from nemo_thinkrm.data.preference import load_configured
from nemo_thinkrm.data.records import SCORES_ONLY
from nemo_thinkrm.evaluation import predictions as preds
from nemo_thinkrm.evaluation import reward_eval
from nemo_thinkrm.evaluation.metrics import compute_metrics
from nemo_thinkrm.evaluation.prompts import request_id, requests_for
from nemo_thinkrm.evaluation.report import write_report
from nemo_thinkrm.generation.interface import build_generator
from nemo_thinkrm.generation.judge import PairJudge
from nemo_thinkrm.genrm import load_template
from nemo_thinkrm.genrm.prompts import JudgePrompt, build_prompts, split_over_length
from nemo_thinkrm.training.resume import write_run_config

logger = logging.getLogger("nemo_thinkrm.eval")


@dataclass
class PreparedRun:
    """What eval and synth share before generation: the engine's model, template and prompts."""

    run_dir: Path
    judge_path: Optional[str]
    prompts: list[JudgePrompt]
    over_length: list[str]
    load_note: str
    judge: PairJudge
    records: list = field(default_factory=list)
    """The pairs judged (after ``transform``): what a reward model scores."""

    @property
    def template(self) -> Any:
        return self.judge.template


def prepare(cfg: EvalConfig, transform: Optional[Callable[[list], list]] = None) -> PreparedRun:
    """run dir → judge/teacher model → data (``transform``ed: e.g. master-key pairs) + template →
    prompts (over-length ones set aside)."""
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    judge_path = resolve_judge_model(cfg, run_dir)
    template, tokenizer, records, load_note = load_inputs(cfg, judge_path)
    write_run_config(cfg)  # with the tokenizer the judge reads
    if cfg.generation.backend not in SCORERS:
        scores_only = [r for r in records if r.tags.get(SCORES_ONLY)]
        if scores_only:
            records = [r for r in records if not r.tags.get(SCORES_ONLY)]
            load_note += (f"; {len(scores_only)} comparisons only a reward model can score (e.g. RewardBench 2 "
                          "Ties) left out")
            logger.warning("%d comparisons are scored from per-response scores only (e.g. RewardBench 2 Ties); a "
                           "generative judge leaves them out (generation.backend=reward_model scores them)",
                           len(scores_only))
    if transform is not None:
        records = transform(records)
    judge = PairJudge(template, tokenizer, cfg.model.tokenizer.think_prefix, ask=None,
                      max_prompt_tokens=cfg.max_prompt_tokens)
    prompts = build_prompts(records, template, judge.render, judge.count, seed=cfg.seed, swap=cfg.swap)
    prompts, over_length = split_over_length(prompts, cfg.max_prompt_tokens)
    if over_length:
        logger.warning("%d pairs have prompts longer than max_prompt_tokens=%d; they are reported, not judged",
                       len(over_length), cfg.max_prompt_tokens)
    return PreparedRun(run_dir, judge_path, prompts, over_length, load_note, judge, list(records))


def judge_rows(cfg: EvalConfig, prep: PreparedRun) -> tuple[list[dict], str, list[str]]:
    """(prediction rows to score, their verdict mode, over-length example ids) from the configured
    judge: generated verdicts, or a reward model's two scores per pair (``reward_eval.py``)."""
    pred_path = prep.run_dir / preds.FILENAME
    if cfg.generation.backend in SCORERS:
        factory = reward_eval.scorer_factory(prep.judge_path, cfg.generation.batch_size, cfg.generation.max_model_len)
        rows = reward_eval.score_missing(prep.records, factory, pred_path, cfg.chunk_size)
        over = reward_eval.over_length_ids(rows)
        if over:
            logger.warning("%d pairs are longer than the reward model's context; they are reported, not judged",
                           len(over))
        skip = set(over)
        return [r for r in rows if r["example_id"] not in skip], reward_eval.MODE, over
    rows = generate_missing(cfg, prep)
    return rows, prep.template.mode, prep.over_length


def run(cfg: EvalConfig) -> dict[str, Any]:
    prep = prepare(cfg)
    run_dir, judge_path, template, load_note = prep.run_dir, prep.judge_path, prep.template, prep.load_note
    rows, mode, over_length = judge_rows(cfg, prep)
    metrics = compute_metrics(rows, mode, cfg.data.name,
                              extra={"over_length": over_length, "template": template.name,
                                     "dataset": cfg.data.name, "data_load": load_note,
                                     "judge": cfg.generation.backend})
    if cfg.generation.backend in SCORERS:
        setting = ("Reward model: both responses scored, the higher wins (an exact tie is no verdict); "
                   "swap and voting do not apply.")
    else:
        setting = (f"Template `{template.name}` ({template.mode}), swap={cfg.swap}, voting m={cfg.voting.m}, "
                   f"temperature {cfg.generation.temperature}, max {cfg.generation.max_new_tokens} new tokens, "
                   f"engine {cfg.generation.backend}.")
    write_outputs(run_dir, metrics, rows, f"Evaluation of {judge_path} on {cfg.data.name}",
                  [setting, f"Data: {load_note}."])
    return metrics


def resolve_judge_model(cfg: EvalConfig, run_dir: Path) -> Optional[str]:
    """The 🤗 directory engines load; a native/.nemo/run-dir checkpoint is converted once into run_dir."""
    path = cfg.generation.model or cfg.model.hf_path
    if path is None or cfg.generation.backend == "openai":
        return path
    return str(hf_dir_for(path, run_dir / "judge_hf"))


def judge_tokenizer(cfg: Any, judge_path: Optional[str]):
    """The judge's tokenizer: the one stored with its checkpoint (a configured ``model.tokenizer`` must be
    the same, ``checkpoint/start.py``), else the configured one (a served judge known by name);
    ``cfg.model.tokenizer`` then names it, so the run's config.yaml records it."""
    tokenizer, cfg.model.tokenizer = tokenizer_for(cfg.model.tokenizer, judge_path, Path(cfg.run_dir))
    return tokenizer


def load_inputs(cfg: EvalConfig, judge_path: Optional[str]):
    template = load_template(cfg.template)
    tokenizer = judge_tokenizer(cfg, judge_path)
    loaded = load_configured(cfg.data)
    records = loaded.records + master_key_negatives(loaded.records, cfg.data.master_key_negatives, cfg.seed)
    if len(records) > len(loaded.records):
        logger.info("data: %d master-key negatives added", len(records) - len(loaded.records))
    return template, tokenizer, records, loaded.summary()


def generate_missing(cfg: EvalConfig, prep: PreparedRun) -> list[dict]:
    """Judge every (prompt, seed) of ``prep`` not yet in its ``predictions.jsonl`` with ``prep.judge``
    over the configured engine; append rows chunk by chunk."""
    prompts, pred_path = prep.prompts, prep.run_dir / preds.FILENAME
    rows = preds.read_rows(pred_path)
    done = preds.completed_ids(rows)
    todo = requests_for(prompts, cfg.voting.m, done, chat=cfg.generation.mode == "chat")
    wanted = {request_id(p.prompt_id, s) for p in prompts for s in range(cfg.voting.m)}
    if todo:
        logger.info("%d requests to generate (%d already in %s)", len(todo), len(wanted) - len(todo), pred_path.name)
        by_id = {p.prompt_id: p for p in prompts}
        gen = build_generator(cfg.generation, prep.judge_path)
        t0, n = time.time(), 0
        try:
            for start in range(0, len(todo), cfg.chunk_size):
                chunk = todo[start:start + cfg.chunk_size]
                judged = prep.judge.judge(chunk, ask=lambda reqs: gen.generate(reqs, progress=True))
                new = [_row(by_id[r.id.rsplit(":s", 1)[0]], r.seed, j.output, j.verdict, prep.template.mode)
                       for r, j in zip(chunk, judged)]
                preds.append_rows(pred_path, new)
                n += len(new)
                rate = n / max(time.time() - t0, 1e-9)
                logger.info("%d/%d generated, %.2f rows/s, ETA %.0f s", n, len(todo), rate, (len(todo) - n) / rate)
        finally:
            gen.close()
        logger.info("judge: %s", dict(prep.judge.stats))
        rows = preds.read_rows(pred_path)
    return [r for r in preds.latest_per_request(rows) if r["request_id"] in wanted]


def _row(p: JudgePrompt, seed: int, out, v, mode: str) -> dict:
    return {"request_id": request_id(p.prompt_id, seed), "prompt_id": p.prompt_id, "example_id": p.example_id,
            "seed": seed, "swapped": p.swapped, "label": p.label, "mode": mode, "section": p.section,
            "tags": p.tags, "output": out.text, "output_tokens": out.output_tokens,
            "finish_reason": out.finish_reason, "error": out.error,
            "verdict": {"label": v.label, "strength": v.strength, "valid": v.valid}}


def write_outputs(run_dir: Path, metrics: dict, rows: list[dict], title: str, notes: list[str]) -> None:
    lengths = [r["output_tokens"] for r in rows if r.get("output_tokens") is not None]
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    write_report(run_dir, {**metrics, "_lengths": lengths}, title, notes)
    _print_headline(metrics)


def _print_headline(m: dict) -> None:
    logger.info("accuracy %.2f (flexible %.2f, invalid %.2f%%) over %d samples / %d pairs", 100 * m["accuracy"],
                100 * m["flexible_accuracy"], 100 * m["invalid_rate"], m["n_samples"], m["n_examples"])
    for name, row in m.get("groups", {}).get("section", {}).items():
        if name != "macro":
            logger.info("  %-22s n=%-5d acc %.2f", name, row["n"], 100 * row["accuracy"])
        else:
            logger.info("  %-22s         acc %.2f", "macro", 100 * row["accuracy"])
