"""Compare a megatron model's logits with 🤗 transformers' on the same weights.

Used by the quickstart, the parity tests and ``tools/verify_conversion.py``.
Runs on every rank of the model's TP group; the 🤗 reference runs on each rank
too (tiny models) or only where the caller asks.
"""

from __future__ import annotations

from pathlib import Path

import torch

from nemo_thinkrm.config.model import ModelConfig
from nemo_thinkrm.models.tp_comm import gather_vocab_logits
from nemo_thinkrm.runtime.device import to_device, to_host
from nemo_thinkrm.training.engine import run_microbatches


def megatron_logits(module: torch.nn.Module, cfg: ModelConfig, input_ids: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary logits ``[b, s, vocab]`` of a single-stage (PP=1) megatron model."""
    from megatron.core import parallel_state as ps

    was_training = module.training
    module.eval()
    with torch.no_grad():
        out = module(to_device(input_ids), None, None)
    module.train(was_training)
    return to_host(gather_vocab_logits(out, cfg.vocab_size, ps.get_tensor_model_parallel_group()))


def megatron_vs_hf_logits(module: torch.nn.Module, cfg: ModelConfig, hf_dir: str | Path,
                          n_tokens: int = 32, batch: int = 2, seed: int = 0) -> dict[str, float]:
    import transformers

    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.vocab_size, (batch, n_tokens), generator=gen)
    ours = megatron_logits(module, cfg, ids).float()
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        ref = hf(ids).logits.float()
    return {"max_abs_diff": float((ours - ref).abs().max()),
            "top1_agreement": float((ours.argmax(-1) == ref.argmax(-1)).float().mean()),
            "logit_scale": float(ref.abs().max())}


def pipeline_logits(chunks: list[torch.nn.Module], cfg: ModelConfig, input_ids: torch.Tensor
                    ) -> torch.Tensor | None:
    """Full-vocabulary logits through megatron's pipeline schedule (any PP size).

    Returns the logits on the last pipeline stage and None on the others.
    """
    from megatron.core import parallel_state as ps

    def collect(batch, output):
        zero = output.sum() * 0
        return zero, torch.tensor(1, dtype=torch.int), {"logits": output.detach()}

    for c in chunks:
        c.eval()
    with torch.no_grad():
        out = run_microbatches(chunks, [{"input_ids": input_ids}], collect, forward_only=True)
    if not ps.is_pipeline_last_stage():
        return None
    return to_host(gather_vocab_logits(out[0]["logits"], cfg.vocab_size, ps.get_tensor_model_parallel_group()))
