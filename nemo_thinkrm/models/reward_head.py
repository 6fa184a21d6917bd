"""A scalar reward head for the megatron ``GPTModel`` (Bradley-Terry reward models, ``thinkrm rm``).

The head replaces the last stage's ``output_layer`` (the vocabulary projection) with a
``[1, hidden]`` linear map, so ``GPTModel.forward`` returns one score per position
(``[b, s, 1]``) through its usual post-processing, pipeline stages and checkpoints included.
It is replicated, not split, over tensor-parallel ranks: without sequence parallelism every
TP rank holds the full final hidden states, so each computes the same score and the same
gradients (for the head and for the hidden states), and no communication is needed; megatron
counts a replicated parameter once in the gradient norm. Sequence parallelism (hidden states
sharded along the sequence) is refused by the RM config. The head's weight is initialised from
a generator seeded by the config, identical on every rank. Weight layout equals 🤗's
``*ForSequenceClassification.score.weight`` with ``num_labels=1``.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from megatron.core.transformer.module import MegatronModule

from nemo_thinkrm.runtime.device import place_module


class RewardHead(MegatronModule):
    def __init__(self, config, hidden_size: int, seed: int) -> None:
        super().__init__(config=config)
        g = torch.Generator().manual_seed(seed)
        weight = torch.randn(1, hidden_size, generator=g) * config.init_method_std
        self.weight = torch.nn.Parameter(weight.to(config.params_dtype))
        self.sequence_parallel = False  # read by GPTModel's inference post-processing

    def forward(self, hidden_states: torch.Tensor, weight=None, runtime_gather_output=None):
        """``[s, b, h]`` → (``[s, b, 1]`` scores, no bias), the call signature of megatron's output layer."""
        return F.linear(hidden_states, self.weight), None


def attach_reward_head(gpt: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Swap the vocabulary projection for a reward head (last pipeline stage) and untie it from
    the embedding on every stage, so megatron neither passes the embedding as the head's weight
    nor all-reduces the two between the first and last stage."""
    if gpt.post_process:
        gpt.output_layer = place_module(RewardHead(gpt.config, gpt.config.hidden_size, seed))
    gpt.share_embeddings_and_output_weights = False
    cfg = getattr(gpt, "thinkrm_model_config", None)
    if cfg is not None and cfg.head != "reward":
        gpt.thinkrm_model_config = replace(cfg, head="reward")
    return gpt
