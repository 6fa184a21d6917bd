"""``thinkrm rm``: a Bradley-Terry reward model on the megatron ``GPTModel`` — the baseline a GenRM
is compared with (Think-RM's Table 2 lists a Llama-3.1-8B BT RM at 68.27 on RM-Bench).

setup: preference pairs through the same adapters as ``eval`` (or the embedded arithmetic
task) → (prompt + chosen, prompt + rejected) ids, several pairs packed per row
(``data/reward_pairs.py``) → the model from a 🤗 causal LM with its vocabulary projection swapped
for a scalar head (``models/reward_head.py``) → the shared loop (``training/loop.py``: resume,
checkpoints, metrics), with the loss ``−log σ(r_chosen − r_rejected [− margin])``
(``algorithms/bt_loss.py``) and held-out accuracy (a tie counts 0.5) at every ``eval_interval``.
TP, PP and DP as every trainer; CP and sequence parallelism are refused by the config.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import torch

from nemo_thinkrm.algorithms.bt_loss import bradley_terry_loss
from nemo_thinkrm.checkpoint.convert import load_initial_weights
from nemo_thinkrm.checkpoint.start import start_model_and_tokenizer
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.supervised import RewardModelConfig
from nemo_thinkrm.data.packing import packed_seq_params, segment_params
from nemo_thinkrm.data.master_keys import master_key_negatives
from nemo_thinkrm.data.preference import load_preference_data
from nemo_thinkrm.data.reward_pairs import (
    BUILTIN,
    PairRow,
    builtin_arithmetic,
    collate_pairs,
    fit_pairs,
    pack_pairs,
    tokenize_pair,
)
from nemo_thinkrm.models.reward_head import attach_reward_head
from nemo_thinkrm.runtime.distributed import init_distributed
from nemo_thinkrm.training.engine import (
    build_engine_model,
    ddp_wrap,
    evaluation_stats,
)
from nemo_thinkrm.training.epochs import EpochPlan, hold_out
from nemo_thinkrm.training.supervised import SupervisedRecipe, train_supervised
from nemo_thinkrm.training.resume import write_run_config

logger = logging.getLogger("nemo_thinkrm.rm")


def load_records(cfg: RewardModelConfig):
    """(train records, held-out records, report): the embedded task, or an adapter's file/hub split."""
    d = cfg.data
    if d.path and d.path.startswith(BUILTIN):
        train, val = builtin_arithmetic(d.path, seed=cfg.seed)
        return train + master_key_negatives(train, d.master_key_negatives, cfg.seed), val, \
            {"source": d.path, "skipped_rows": 0}
    loaded = load_preference_data(d.name, path=d.path, hub_id=d.hub_id, split=d.split, field_map=d.field_map or None,
                                  max_bad_fraction=d.max_bad_fraction, limit=d.limit)
    logger.info("%s", loaded.summary())
    records = loaded.records
    if d.val_path:
        val = load_preference_data(d.name, path=d.val_path, field_map=d.field_map or None,
                                   max_bad_fraction=d.max_bad_fraction).records
    elif d.val_fraction > 0:
        records, val = hold_out(records, d.val_fraction, cfg.seed)
    else:
        val = []
    records = records + master_key_negatives(records, d.master_key_negatives, cfg.seed)  # training pairs only
    return records, val, {"source": loaded.origin, "skipped_rows": len(loaded.skipped),
                          "filtered_rows": len(loaded.filtered)}


def prepare_pairs(cfg: RewardModelConfig, tokenizer) -> tuple[list, list, dict]:
    train_recs, val_recs, report = load_records(cfg)
    t0 = time.time()
    train = [tokenize_pair(r, tokenizer, cfg.data.use_margin) for r in train_recs]
    val = [tokenize_pair(r, tokenizer, cfg.data.use_margin) for r in val_recs]
    logger.info("tokenised %d pairs in %.1f s", len(train) + len(val), time.time() - t0)
    train, dropped = fit_pairs(train, cfg.seq_length)
    val, val_dropped = fit_pairs(val, cfg.seq_length)
    if dropped or val_dropped:
        logger.warning("%d training and %d held-out pairs longer than seq_length=%d (chosen + rejected) were "
                       "dropped, e.g. %s", len(dropped), len(val_dropped), cfg.seq_length,
                       (dropped + val_dropped)[:3])
    report.update(train_pairs=len(train), val_pairs=len(val), dropped=len(dropped) + len(val_dropped))
    logger.info("RM data: %s", report)
    if not train:
        raise ConfigError(f"no training pairs left (data.path={cfg.data.path!r}, seq_length={cfg.seq_length})")
    return train, val, report


def make_batch(rows: list[PairRow], *, te: bool) -> dict:
    """One micro-batch: the packed pairs, their segment boundaries (local layers) or THD (TE, one row)."""
    batch = collate_pairs(rows)
    if not te:
        batch["packed_seq_params"] = segment_params(batch["segment_ids"])
    else:
        if len(rows) != 1:
            raise ConfigError(f"thinkrm rm on Transformer Engine (THD) takes one packed row per micro-batch; "
                              f"set micro_batch_size=1, got {len(rows)}")
        batch["packed_seq_params"] = packed_seq_params(batch["segment_ids"])
    return batch


def accuracy_metrics(stats: dict[str, float]) -> dict[str, float]:
    pairs = max(stats.get("pairs", 0.0), 1.0)
    return {"accuracy": stats["right"] / pairs, "reward_gap": stats["reward_gap_sum"] / pairs, "pairs": stats["pairs"]}


def build_reward_model(cfg: RewardModelConfig, start_head: str) -> list[torch.nn.Module]:
    """The GPTModel from the start checkpoint with a reward head, before DDP lays out its gradient
    buffers: a causal LM's vocabulary projection is loaded, then swapped for a fresh head; a
    reward model (``start_head == "reward"``, e.g. a 🤗 ``*ForSequenceClassification``) keeps its own."""
    build_cfg = replace(cfg.model, head="lm" if start_head == "lm" and cfg.model.hf_path else "reward")
    module = build_engine_model(build_cfg, cfg.parallel, recompute=cfg.recompute, backend=cfg.layer_backend,
                                wrap_ddp=False, head_seed=cfg.seed)[0]
    if cfg.model.hf_path:
        load_initial_weights(module, cfg.model.hf_path, build_cfg)
    if build_cfg.head == "lm":
        attach_reward_head(module, seed=cfg.seed)
    return ddp_wrap(module, cfg.parallel)


def run(cfg: RewardModelConfig) -> dict[str, Any]:
    cfg.model, tokenizer = start_model_and_tokenizer(cfg.model, cfg.run_dir)
    start_head, cfg.model.head = cfg.model.head, "reward"  # checkpoints and exports are reward models
    ctx = init_distributed(cfg.parallel, cfg.model, seed=cfg.seed)
    train, val, data_report = prepare_pairs(cfg, tokenizer)
    pad_id = tokenizer.pad_token_id
    plan = EpochPlan(train, cfg.seed, cfg.global_batch_size, lambda order: pack_pairs(order, cfg.seq_length, pad_id))
    logger.info("epoch 0: %d pairs → %d rows of %d tokens", len(train), len(plan.rows(0)), cfg.seq_length)
    run_config = write_run_config(cfg)

    chunks = build_reward_model(cfg, start_head)
    val_rows = pack_pairs(val, cfg.seq_length, pad_id) if val else []

    def validate(to_batch) -> dict[str, float]:
        # one row per micro-batch, so every held-out row is scored (rows are uneven in pairs)
        stats = evaluation_stats(chunks, val_rows, 1, to_batch, bradley_terry_loss, ctx.dp_rank, ctx.dp_size)
        if not stats:
            return {"val_accuracy": float("nan")}
        return {"val_loss": stats["loss_sum"] / max(stats["pairs"], 1.0),
                **{f"val_{k}": v for k, v in accuracy_metrics(stats).items()}}

    recipe = SupervisedRecipe(plan, make_batch, bradley_terry_loss, count_key="pairs",
                              validate=validate if val_rows else None, flops_kwargs={"outputs": 1},
                              extra_metrics=accuracy_metrics)
    history = train_supervised(cfg, ctx, chunks, tokenizer, run_config, recipe)
    return {"data": data_report, "steps": len(history), "final_loss": history[-1]["loss"] if history else None}
