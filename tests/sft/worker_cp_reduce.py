"""2 gloo processes as one CP=2 group: each rank's loss over its share of the sequences, reduced
by the engine's ``reduce_stats``, must equal the loss over the whole sequences (printed as JSON)."""

from __future__ import annotations

import json
import os

import torch
import torch.distributed as dist


def main() -> None:
    from megatron.core import parallel_state as ps

    from nemo_thinkrm.algorithms.lm_loss import masked_token_loss
    from nemo_thinkrm.runtime.cpu_compat import apply_cpu_compat
    from nemo_thinkrm.training.context_parallel import split_batch
    from nemo_thinkrm.training.engine import reduce_stats

    apply_cpu_compat()
    dist.init_process_group("gloo")
    # megatron's groups only (our ParallelConfig refuses CP on CPU: its attention is TE's)
    ps.initialize_model_parallel(context_parallel_size=2)
    g = torch.Generator().manual_seed(0)
    b, s = 3, 16
    per_token = torch.rand(b, s, generator=g)  # stands for the model's per-token loss
    batch = {"input_ids": torch.arange(b * s).view(b, s), "labels": per_token,
             "loss_mask": (torch.rand(b, s, generator=g) > 0.3).float()}
    mine = split_batch(batch, ps.get_context_parallel_world_size(), ps.get_context_parallel_rank())
    _, _, stats = masked_token_loss(mine, mine["labels"])  # labels carry the per-token loss here
    reduced = reduce_stats([stats])
    full_sum = float((per_token * batch["loss_mask"]).sum())
    if dist.get_rank() == 0:
        print(json.dumps({"reduced": reduced, "full_sum": full_sum, "full_tokens": float(batch["loss_mask"].sum()),
                          "local_tokens": mine["input_ids"].shape[1], "cp": ps.get_context_parallel_world_size(),
                          "world": int(os.environ["WORLD_SIZE"])}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
