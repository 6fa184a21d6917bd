"""``thinkrm sft``: warm-up SFT on long chain-of-thought traces (Think-RM stage 1).

setup (tokenise → fit to length → split → epoch plans of packed rows → model →
optimizer) then the shared loop (``training/loop.py``). The batches of step N are
a pure function of (seed, N): the epoch's shuffle is seeded by (seed, epoch) and
packing is deterministic, so the data position is exact on resume.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any


from nemo_thinkrm.algorithms.lm_loss import masked_token_loss
from nemo_thinkrm.checkpoint.convert import load_initial_weights
from nemo_thinkrm.checkpoint.start import start_model_and_tokenizer
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.supervised import SFTConfig
from nemo_thinkrm.data.packing import (
    PackedRow,
    collate,
    fill_to_multiple,
    pack_samples,
    packed_seq_params,
    pad_one,
    padding_waste,
    segment_params,
)
from nemo_thinkrm.data.sft import TokenizedSample, fit_to_length, load_sft_records, tokenize_record
from nemo_thinkrm.runtime.distributed import init_distributed
from nemo_thinkrm.training.context_parallel import split_batch
from nemo_thinkrm.training.engine import (
    build_engine_model,
    evaluation_stats,
    unwrap,
)
from nemo_thinkrm.training.epochs import EpochPlan, hold_out
from nemo_thinkrm.training.supervised import SupervisedRecipe, train_supervised
from nemo_thinkrm.training.memory import estimate_memory
from nemo_thinkrm.training.resume import write_run_config

logger = logging.getLogger("nemo_thinkrm.sft")


def tokenize_all(records, tokenizer, think_prefix: bool) -> list[TokenizedSample]:
    from tqdm import tqdm

    t0 = time.time()
    out = [tokenize_record(r, tokenizer, think_prefix) for r in tqdm(records, desc="tokenising", unit="row",
                                                                      disable=len(records) < 1000)]
    logger.info("tokenised %d samples in %.1f s (%.0f rows/s)", len(out), time.time() - t0,
                len(out) / max(time.time() - t0, 1e-9))
    return out


def prepare_samples(cfg: SFTConfig, tokenizer) -> tuple[list[TokenizedSample], list[TokenizedSample], dict]:
    think = cfg.model.tokenizer.think_prefix
    train_load = load_sft_records(cfg.data.train_path, cfg.data.max_bad_fraction)
    train = tokenize_all(train_load.records, tokenizer, think)
    train, truncated, dropped = fit_to_length(train, cfg.seq_length + 1, cfg.data.over_length)
    if truncated or dropped:
        logger.warning("%d samples longer than seq_length=%d were truncated and %d dropped (data.over_length=%s)",
                       len(truncated), cfg.seq_length, len(dropped), cfg.data.over_length)
    val: list[TokenizedSample] = []
    if cfg.data.val_path:
        val_load = load_sft_records(cfg.data.val_path, cfg.data.max_bad_fraction, key="data.val_path")
        val = tokenize_all(val_load.records, tokenizer, think)
        val, _, _ = fit_to_length(val, cfg.seq_length + 1, cfg.data.over_length)
    elif cfg.data.val_fraction > 0:
        train, val = hold_out(train, cfg.data.val_fraction, cfg.seed)
    report = {"train_samples": len(train), "val_samples": len(val), "skipped_rows": len(train_load.skipped),
              "truncated": len(truncated), "dropped": len(dropped)}
    logger.info("SFT data: %s", report)
    return train, val, report


def run(cfg: SFTConfig) -> dict[str, Any]:
    cfg.model, tokenizer = start_model_and_tokenizer(cfg.model, cfg.run_dir)
    ctx = init_distributed(cfg.parallel, cfg.model, seed=cfg.seed)
    train, val, data_report = prepare_samples(cfg, tokenizer)
    pad_multiple = 2 * ctx.cp_size if ctx.cp_size > 1 else 1
    pad_id = tokenizer.pad_token_id
    plan = EpochPlan(train, cfg.seed, cfg.global_batch_size,
                     (lambda order: pack_samples(order, cfg.seq_length, pad_id, pad_multiple)) if cfg.data.packing
                     else (lambda order: [pad_one(s, cfg.seq_length, pad_id) for s in order]))
    if cfg.num_epochs:
        cfg.train_iters = sum(plan.steps_in(e) for e in range(cfg.num_epochs))
        logger.info("%d epochs = %d steps", cfg.num_epochs, cfg.train_iters)
    waste = padding_waste(plan.rows(0))
    logger.info("epoch 0: %d samples → %d sequences of %d tokens (padding %.1f%%, packing=%s)", len(train),
                len(plan.rows(0)), cfg.seq_length, 100 * waste, cfg.data.packing)
    run_config = write_run_config(cfg)  # architecture from model.hf_path, train_iters from num_epochs
    logger.info("memory estimate: %s", estimate_memory(cfg.model, cfg.parallel, cfg.seq_length, cfg.micro_batch_size,
                                                       ctx.dp_size, cfg.recompute.granularity).describe())

    chunks = build_engine_model(cfg.model, cfg.parallel, recompute=cfg.recompute, backend=cfg.layer_backend)
    if cfg.model.hf_path:
        load_initial_weights(unwrap(chunks[0]), cfg.model.hf_path, cfg.model)
    val_rows = fill_to_multiple([pad_one(s, cfg.seq_length, tokenizer.pad_token_id) for s in val],
                                cfg.micro_batch_size * ctx.dp_size)
    recipe = SupervisedRecipe(
        plan, partial(make_batch, cp_size=ctx.cp_size, cp_rank=ctx.cp_rank, pad_multiple=pad_multiple),
        masked_token_loss,
        validate=(lambda to_batch: {"val_loss": validation_loss(chunks, val_rows, cfg, ctx, to_batch)}) if val_rows
        else None,
        flops_kwargs={"cp_size": ctx.cp_size}, tokens_dp_size=ctx.dp_size * ctx.cp_size)  # CP ranks share tokens
    history = train_supervised(cfg, ctx, chunks, tokenizer, run_config, recipe)
    return {"data": data_report, "padding_waste": waste, "steps": len(history),
            "final_loss": history[-1]["loss"] if history else None}


def make_batch(rows: list[PackedRow], *, te: bool, cp_size: int = 1, cp_rank: int = 0,
               pad_multiple: int = 1) -> dict:
    """One micro-batch (host tensors) as this rank's model needs it.

    Local layers (CPU): the segment boundaries (``segment_params``: attention inside each
    sample only, no ``[S, S]`` mask). Transformer Engine: a packed row goes as THD
    (``cu_seqlens``), single-sample rows under TE's causal mask. Then this CP rank's share of
    every sequence (``training/context_parallel.py``).
    """
    batch = collate(rows, build_mask=False)
    if not te:
        batch["packed_seq_params"] = segment_params(batch["segment_ids"])
    if te and any(len(r.sample_ids) > 1 for r in rows):  # a causal mask alone would mix the samples
        if len(rows) != 1:
            raise ConfigError(f"packed SFT on Transformer Engine (THD) takes one packed row per micro-batch; "
                              f"set micro_batch_size=1, got {len(rows)}")
        batch["packed_seq_params"] = packed_seq_params(batch["segment_ids"], pad_multiple)
    return split_batch(batch, cp_size, cp_rank)


def validation_loss(chunks, rows: list[PackedRow], cfg: SFTConfig, ctx, to_batch) -> float:
    """Per-token mean loss over the validation rows (every DP rank takes its share)."""
    stats = evaluation_stats(chunks, rows, cfg.micro_batch_size, to_batch, masked_token_loss, ctx.dp_rank, ctx.dp_size)
    return stats["loss_sum"] / max(stats["tokens"], 1.0) if stats else float("nan")
