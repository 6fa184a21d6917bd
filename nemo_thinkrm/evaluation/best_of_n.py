"""``thinkrm best-of-n``: pick the best of N responses per prompt with a judge, and rank the rest.

A generative pairwise judge (any engine: vLLM, the OpenAI servers, 🤗) plays ``knockout`` (N − 1
comparisons per item, one judge batch per round over all items of a chunk) or ``all_pairs``
(Copeland over every pair, in both orders by default); a reward model (``generation.backend=
reward_model``) ranks by its scores (``genrm/ranking.py``). Responses are shown in a seeded order per
item, so a judge that prefers position A, or a tie rule that prefers the lower index, cannot pick
the first response of the file. A comparison is 1 / 0 for a verdict for A / B and ½ for an
unreadable verdict, a failed request or a prompt over ``max_prompt_tokens`` (each counted).

Writes ``best_of_n.jsonl`` (per item: the winner, the full order best first, the comparisons used,
the bracket or win matrix or scores, and whether the winner is right when the data says which are),
``metrics.json`` (accuracy against chance, comparisons per item, verdict health, items/s) and
``report.md``. A restarted run skips the items already in ``best_of_n.jsonl``.
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from nemo_thinkrm.config.registry import SCORERS
from nemo_thinkrm.config.evaluation import BestOfNConfig
from nemo_thinkrm.data.candidates import CandidateSet, load_candidate_sets
from nemo_thinkrm.evaluation.predictions import append_rows, read_rows
from nemo_thinkrm.evaluation.runner import judge_tokenizer, resolve_judge_model
from nemo_thinkrm.generation.interface import build_generator
from nemo_thinkrm.generation.judge import PairJudge
from nemo_thinkrm.generation.reward_scorer import ScoreRequest, build_scorer
from nemo_thinkrm.genrm import load_template
from nemo_thinkrm.genrm.ranking import Ranking, by_scores, rank_many

logger = logging.getLogger("nemo_thinkrm.best_of_n")
FILENAME = "best_of_n.jsonl"


def shown_order(item: CandidateSet, seed: int) -> list[int]:
    """The seeded order the judge sees the item's responses in (shown position → file index)."""
    order = list(range(len(item.responses)))
    random.Random(f"{seed}:{item.id}").shuffle(order)
    return order


class PairwiseAsker:
    """(item, i, j) matches → ``compare(i, j)`` through the generative pair judge (``generation/judge.py``)."""

    def __init__(self, cfg: BestOfNConfig, judge_path: Optional[str]) -> None:
        self.cfg = cfg
        self.engine = build_generator(cfg.generation, judge_path)
        self.judge = PairJudge(load_template(cfg.template), judge_tokenizer(cfg, judge_path),
                               cfg.model.tokenizer.think_prefix, lambda reqs: self.engine.generate(reqs, progress=True),
                               max_prompt_tokens=cfg.max_prompt_tokens)
        self.stats = self.judge.stats

    def ask(self, items: Sequence[CandidateSet], orders: Sequence[list[int]], matches) -> list[float]:
        """1 / 0 for a verdict for A / B; ½ for no verdict (unreadable, failed, over length)."""
        requests = [self.judge.request(f"{items[k].id}:{orders[k][i]}-{orders[k][j]}", items[k].context,
                                       items[k].responses[orders[k][i]], items[k].responses[orders[k][j]],
                                       seed=self.cfg.seed) for k, i, j in matches]
        return [(1.0 if j.verdict.label == "A" else 0.0) if j.status == "ok" else 0.5
                for j in self.judge.judge(requests)]

    def rank(self, items: Sequence[CandidateSet], orders: Sequence[list[int]]) -> list[Ranking]:
        return rank_many(self.cfg.strategy, [len(it.responses) for it in items],
                         lambda matches: self.ask(items, orders, matches),
                         seeds=[self.cfg.seed] * len(items), both_orders=self.cfg.both_orders)

    def close(self) -> None:
        self.engine.close()


class ScoreAsker:
    """A reward model's score per response; the ranking follows the scores."""

    def __init__(self, cfg: BestOfNConfig, judge_path: Optional[str]) -> None:
        self.scorer = build_scorer(judge_path, batch_size=cfg.generation.batch_size,
                                   max_length=cfg.generation.max_model_len)
        self.stats = {"requests": 0, "failed": 0, "over_length": 0}
        self.scores: dict[str, list[float]] = {}

    def rank(self, items: Sequence[CandidateSet], orders: Sequence[list[int]]) -> list[Ranking]:
        reqs = [ScoreRequest(f"{it.id}:{order[p]}", tuple(it.context), it.responses[order[p]])
                for it, order in zip(items, orders) for p in range(len(order))]
        outs = iter(self.scorer.score(reqs, progress=True))
        self.stats["requests"] += len(reqs)
        out = []
        for it, order in zip(items, orders):
            scores = []
            for _ in order:
                o = next(outs)
                if o.score is None:
                    self.stats["over_length" if (o.error or "").startswith("over-length") else "failed"] += 1
                scores.append(float("-inf") if o.score is None else o.score)
            self.scores[it.id] = scores
            out.append(by_scores(scores))
        return out

    def close(self) -> None:
        self.scorer.close()


def result_row(item: CandidateSet, order: list[int], ranking: Ranking, scores: Optional[list[float]]) -> dict:
    """Shown positions mapped back to the file's response indices."""
    orig = [order[p] for p in ranking.order]
    row: dict[str, Any] = {"id": item.id, "n": len(item.responses), "winner": orig[0], "order": orig,
                           "comparisons": ranking.comparisons,
                           "right": (orig[0] in item.correct) if item.correct else None}
    if ranking.bracket:
        row["bracket"] = [[order[i], order[j], order[w]] for i, j, w in ranking.bracket]
    if ranking.wins is not None:
        n = len(order)
        wins = [[0.0] * n for _ in range(n)]
        for a in range(n):
            for b in range(n):
                wins[order[a]][order[b]] = ranking.wins[a][b]
        row["wins"] = wins
    if scores is not None:
        row["scores"] = [scores[order.index(k)] for k in range(len(order))]
    return row


def summarize(rows: Sequence[dict], stats: dict, items: Sequence[CandidateSet], cfg: BestOfNConfig,
              seconds: float, skipped_rows: int) -> dict[str, Any]:
    labelled = [r for r in rows if r["right"] is not None]
    by_id = {it.id: it for it in items}
    chance = [len(by_id[r["id"]].correct) / r["n"] for r in labelled if r["id"] in by_id]
    out = {"strategy": cfg.strategy, "judge": cfg.generation.backend, "items": len(rows),
           "labelled_items": len(labelled), "skipped_rows": skipped_rows,
           "accuracy": sum(r["right"] for r in labelled) / len(labelled) if labelled else None,
           "chance": sum(chance) / len(chance) if chance else None,
           "comparisons_per_item": sum(r["comparisons"] for r in rows) / max(len(rows), 1),
           "mean_n": sum(r["n"] for r in rows) / max(len(rows), 1), "items_per_s": len(rows) / max(seconds, 1e-9),
           **{f"judge_{k}": v for k, v in stats.items()}}
    return out


def _report(run_dir: Path, m: dict, judge: str, cfg: BestOfNConfig) -> None:
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f} %"

    orders = f" (both orders: {cfg.both_orders})" if cfg.strategy == "all_pairs" else ""
    lines = [f"# Best-of-N with {judge}", "",
             f"Strategy `{cfg.strategy}`{orders}, engine {cfg.generation.backend}, data `{cfg.data_path}`.", "",
             "| items | labelled | accuracy | chance | comparisons / item | mean N |", "|---|---|---|---|---|---|",
             f"| {m['items']} | {m['labelled_items']} | {pct(m['accuracy'])} | {pct(m['chance'])} | "
             f"{m['comparisons_per_item']:.2f} | {m['mean_n']:.2f} |", "",
             "Judge: " + ", ".join(f"{k.removeprefix('judge_')} {v}" for k, v in m.items() if k.startswith("judge_")
                                   and k != "judge") + f"; {m['skipped_rows']} rows skipped.", ""]
    (run_dir / "report.md").write_text("\n".join(lines))


def run(cfg: BestOfNConfig) -> dict[str, Any]:
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    items, skipped = load_candidate_sets(cfg.data_path, cfg.limit, cfg.max_bad_fraction)
    judge_path = resolve_judge_model(cfg, run_dir)
    out_path = run_dir / FILENAME
    done = {r["id"]: r for r in read_rows(out_path)}
    todo = [it for it in items if it.id not in done]
    logger.info("%d candidate sets (%d already ranked in %s), strategy %s", len(items), len(items) - len(todo),
                FILENAME, cfg.strategy)
    engine = ScoreAsker if cfg.generation.backend in SCORERS else PairwiseAsker
    asker = engine(cfg, judge_path) if todo else None
    t0 = time.time()
    try:
        for start in range(0, len(todo), cfg.chunk_size):
            chunk = todo[start:start + cfg.chunk_size]
            orders = [shown_order(it, cfg.seed) for it in chunk]
            rankings = asker.rank(chunk, orders)
            scores = getattr(asker, "scores", {})
            new = [result_row(it, o, r, scores.get(it.id)) for it, o, r in zip(chunk, orders, rankings)]
            append_rows(out_path, new)
            done.update((r["id"], r) for r in new)
            n = start + len(chunk)
            rate = n / max(time.time() - t0, 1e-9)
            logger.info("%d/%d items ranked, %.2f items/s, ETA %.0f s", n, len(todo), rate, (len(todo) - n) / rate)
    finally:
        if asker is not None:
            asker.close()
    rows = [done[it.id] for it in items if it.id in done]
    metrics = summarize(rows, asker.stats if asker else {}, items, cfg, time.time() - t0, skipped)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _report(run_dir, metrics, str(judge_path or cfg.generation.model), cfg)
    logger.info("best-of-N: %d items, accuracy %s (chance %s), %.2f comparisons per item", metrics["items"],
                metrics["accuracy"], metrics["chance"], metrics["comparisons_per_item"])
    return metrics
