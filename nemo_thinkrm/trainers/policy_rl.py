"""What GRPO and pairwise RLHF share around their step: the policy + frozen reference + sampler,
and the resume → step → log → checkpoint loop. Each trainer supplies only its prompts and step."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.runtime.device import offload_module, on_accelerator, place_module

logger = logging.getLogger("nemo_thinkrm.policy_rl")


def start_policy(cfg, needs: str):
    """Take the architecture from ``model.hf_path``, load the tokenizer, initialise distributed."""
    from nemo_thinkrm.models.tokenizer import load_tokenizer
    from nemo_thinkrm.runtime.distributed import init_distributed
    from nemo_thinkrm.trainers.sft import _source_architecture

    source = _source_architecture(cfg)
    if source is None:
        raise ConfigError(f"model.hf_path is required: {needs}")
    cfg.model = replace(source, params_dtype=cfg.model.params_dtype, tokenizer=cfg.model.tokenizer,
                        hf_path=cfg.model.hf_path)
    tokenizer = load_tokenizer(cfg.model.tokenizer)
    init_distributed(cfg.parallel, cfg.model, seed=cfg.seed)
    return tokenizer


def build_policy(cfg, tokenizer, stop_strings: Optional[list]) -> dict[str, Any]:
    """Trainable policy (DDP, optimizer, LR schedule over every PPO update), the frozen reference
    (its log-probs are computed once per rollout batch) and the rollout sampler."""
    from nemo_thinkrm.generation.megatron_sampler import MegatronSampler
    from nemo_thinkrm.models.builder import build_gpt_model
    from nemo_thinkrm.models.tokenizer import end_of_turn_token
    from nemo_thinkrm.trainers.sft import _load_initial_weights
    from nemo_thinkrm.training.engine import build_engine_model, build_optimizer, configure_for_training, unwrap

    chunks = build_engine_model(cfg.model, cfg.parallel, backend=cfg.layer_backend)
    _load_initial_weights(unwrap(chunks[0]), cfg)
    configure_for_training(chunks)
    updates = cfg.prompts_per_step * cfg.group_size // cfg.global_batch_size * cfg.ppo_epochs
    optimizer, scheduler = build_optimizer(chunks, cfg.optim, cfg.parallel, cfg.model.params_dtype,
                                           cfg.train_iters * updates)
    ref = build_gpt_model(cfg.model, cfg.parallel, backend=cfg.layer_backend).eval()
    _load_initial_weights(ref, cfg)
    for p in ref.parameters():
        p.requires_grad_(False)
    offload = bool(cfg.offload_reference) and on_accelerator(ref)
    if offload:
        offload_module(ref)
    eos = sorted({tokenizer.convert_tokens_to_ids(end_of_turn_token(tokenizer)), tokenizer.eos_token_id} - {None})
    if cfg.rollout_engine == "vllm":
        sampler = _vllm_rollouts(cfg, tokenizer, eos, stop_strings)
    else:
        sampler = MegatronSampler(chunks, tokenizer, cfg.generation, eos, stop_strings=stop_strings)
    return {"tokenizer": tokenizer, "chunks": chunks, "module": unwrap(chunks[0]), "optimizer": optimizer,
            "scheduler": scheduler, "ref": ref, "ref_offloaded": offload, "sampler": sampler}


def _vllm_rollouts(cfg, tokenizer, eos: list[int], stop_strings: Optional[list]):
    """The colocated vLLM engine, built from a 🤗 copy of the start checkpoint (its weights are
    replaced from megatron before every rollout anyway)."""
    import torch.distributed as dist

    from nemo_thinkrm.generation.vllm_rollout import VLLMRolloutEngine

    if dist.get_world_size() != 1:
        raise ConfigError("rollout_engine=vllm runs one in-process engine beside a policy that is not "
                          f"model- or data-parallel (world size 1, got {dist.get_world_size()}); "
                          "use rollout_engine=megatron for parallel layouts")
    hf_dir = Path(cfg.model.hf_path)
    if not (hf_dir / "config.json").is_file():
        from nemo_thinkrm.checkpoint.convert import to_hf

        target = Path(cfg.run_dir) / "rollout_hf"
        if not (target / "config.json").is_file():
            to_hf(hf_dir, target, overwrite=True)
        hf_dir = target
    max_len = min(cfg.max_prompt_tokens + cfg.generation.max_new_tokens, cfg.model.max_position_embeddings)
    logger.info("rollouts: colocated vLLM engine for %s (max_model_len %d, weights synced in memory)", hf_dir, max_len)
    return VLLMRolloutEngine(str(hf_dir), tokenizer, cfg.generation, eos, stop_strings or cfg.generation.stop,
                             max_model_len=max_len, seed=cfg.seed, dtype=str(cfg.model.params_dtype))


def sample_rollouts(cfg, s: dict[str, Any], requests: list) -> list:
    """Sample with the policy's current weights: a vLLM engine first receives them (in memory)
    and afterwards gives its GPU memory back to training."""
    sampler = s["sampler"]
    if hasattr(sampler, "sync_from_megatron"):
        sampler.sync_from_megatron(s["module"], cfg.model)
    samples = sampler.sample(requests)
    if hasattr(sampler, "sleep"):
        sampler.sleep()
    return samples


@contextmanager
def reference_model(s: dict[str, Any]) -> Iterator[Any]:
    """The frozen reference, on the GPU only while it is used: with ``offload_reference`` its
    weights (a full model copy, 16 GB for an 8B model in bf16) otherwise sit in host memory,
    which leaves that room to activations and the colocated rollout engine."""
    ref = s["ref"]
    if not s.get("ref_offloaded"):
        yield ref
        return
    place_module(ref)
    try:
        yield ref
    finally:
        offload_module(ref)


def run_policy_loop(cfg, s: dict[str, Any], step_fn: Callable[[Any, dict, int], dict[str, float]]
                    ) -> list[dict[str, float]]:
    """Resume from ``latest``, run the remaining steps, log each, checkpoint on schedule."""
    from nemo_thinkrm.checkpoint.training_state import Checkpointer, TrainState
    from nemo_thinkrm.metrics_log import MetricsLogger
    from nemo_thinkrm.training.loop import InjectedFault
    from nemo_thinkrm.training.resume import resume, write_run_config

    ckpt = Checkpointer(Path(cfg.run_dir) / "checkpoints", keep_last=cfg.checkpoint.keep_last)
    run_config = write_run_config(cfg)  # the resolved architecture, not the one asked for
    state = resume(ckpt, s["module"], s["optimizer"], s["scheduler"], cfg, run_config) or TrainState()
    log = MetricsLogger(cfg.run_dir, total_steps=cfg.train_iters)
    history = []
    for step in range(state.step + 1, cfg.train_iters + 1):
        metrics = step_fn(cfg, s, step)
        history.append(metrics)
        log.log(step, metrics)
        state.step = step
        if (cfg.checkpoint.save_interval and step % cfg.checkpoint.save_interval == 0) or step == cfg.train_iters:
            state.scheduler = s["scheduler"].state_dict()
            ckpt.save(state, s["module"], s["optimizer"], cfg.model, tokenizer=s["tokenizer"], run_config=run_config)
        if cfg.checkpoint.fail_after_step == step:
            log.close()
            raise InjectedFault(f"fault injection: stopping after step {step} (checkpoint.fail_after_step)")
    log.close()
    return history
