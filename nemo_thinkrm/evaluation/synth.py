"""``thinkrm synth``: Think-RM's warm-up data — teacher reasoning traces with the right verdict.

For every training pair the teacher (any engine: vLLM offline, an endpoint list,
or 🤗 on CPU) writes ``samples_per_pair`` traces with the reasoning template;
traces whose strict verdict matches the label are kept, and one per pair is
chosen (``keep=longest`` as in Think-RM, or shortest / random). The output is the
SFT JSONL the SFT stage reads: the judge prompt as the user turn and the trace
(the text after the ``<think>\\n`` opener) as the assistant turn.
"""

from __future__ import annotations

import json
import logging
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.evaluation import SynthConfig
from nemo_thinkrm.evaluation.metrics import samples_from_rows
from nemo_thinkrm.evaluation.runner import PreparedRun, generate_missing, prepare
from nemo_thinkrm.genrm import load_template
from nemo_thinkrm.genrm.prompts import JudgePrompt, build_prompts

logger = logging.getLogger("nemo_thinkrm.synth")


def run(cfg: SynthConfig) -> dict[str, Any]:
    prep = prepare(cfg)
    run_dir, template, prompts, over_length, note = (prep.run_dir, prep.template, prep.prompts,
                                                     prep.over_length, prep.load_note)
    cfg.voting.m = cfg.samples_per_pair
    rows = generate_missing(cfg, prep)
    scored = samples_from_rows(rows, template.mode)
    correct = defaultdict(list)
    for row, s in zip(rows, scored):
        if s.correct == 1.0:
            correct[row["prompt_id"]].append(row)
    by_id = {p.prompt_id: p for p in (train_prompts(cfg, prep) if cfg.train_template else prompts)}
    rng = random.Random(cfg.seed)
    out_rows = []
    for prompt_id in sorted(correct):
        chosen = _pick(correct[prompt_id], cfg.keep, rng)
        p = by_id[prompt_id]
        out_rows.append({"id": prompt_id, "messages": [{"role": "user", "content": p.user_message},
                                                        {"role": "assistant", "content": chosen["output"]}],
                         "label": p.label, "section": p.section, "seed": chosen["seed"],
                         "output_tokens": chosen["output_tokens"], "source": f"synth:{cfg.data.name}"})
    out = Path(cfg.output) if cfg.output else run_dir / "sft.jsonl"
    tmp = out.with_name(f".tmp-{out.name}")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out_rows))
    tmp.replace(out)
    summary = {"pairs": len(prompts), "kept": len(out_rows), "generations": len(rows),
               "correct_generations": sum(len(v) for v in correct.values()),
               "pairs_without_correct_trace": len(prompts) - len(out_rows), "over_length": len(over_length),
               "output": str(out), "keep": cfg.keep, "data": note}
    (run_dir / "synth_summary.json").write_text(json.dumps(summary, indent=2))
    logger.info("kept %d of %d pairs (%d generations, %d correct) → %s", len(out_rows), len(prompts), len(rows),
                summary["correct_generations"], out)
    return summary


def train_prompts(cfg: SynthConfig, prep: PreparedRun) -> list[JudgePrompt]:
    """The same pairs in the same orders under ``train_template`` (what the SFT rows' user turn shows)."""
    template = load_template(cfg.train_template)
    if template.proving:
        raise ConfigError(f"train_template={cfg.train_template!r} is a preference-proving template; the rows it "
                          "writes train a judge, which is never shown the label")
    if template.mode != prep.template.mode:
        raise ConfigError(f"train_template={cfg.train_template!r} asks for {template.mode} verdicts, the teacher's "
                          f"template for {prep.template.mode}")
    return build_prompts(prep.records, template, prep.judge.render, prep.judge.count, seed=cfg.seed, swap=cfg.swap)


def _pick(rows: list[dict], keep: str, rng: random.Random) -> dict:
    rows = sorted(rows, key=lambda r: (r.get("output_tokens") or len(r["output"]), r["seed"]))
    if keep == "longest":
        return rows[-1]
    if keep == "shortest":
        return rows[0]
    return rng.choice(rows)
