"""The Bradley-Terry pairwise loss of a scalar reward model, in the engine's (sum, count) convention.

    loss = −log σ(r_chosen − r_rejected − margin)

summed over the pairs of a micro-batch; the engine divides the gradient by the global number
of pairs (``training/engine.py``), so it does not depend on micro-batching or DP size. The
optional margin is the preference strength (Llama-2's margin loss, arXiv 2307.09288 §3.2.2):
pairs the annotators called "much better" must be separated by more.

A micro-batch carries, per row, the positions of the last token of each chosen and each
rejected response packed into it (``pair_index``: ``[b, P, 2]``, −1 where the row holds fewer
than ``P`` pairs) and the margins (``pair_margin``: ``[b, P]``); the model's output is the
score at every position (``[b, s, 1]``, ``models/reward_head.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry(chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pair loss ``−log σ(chosen − rejected − margin)`` (``logsigmoid``: no overflow at large gaps)."""
    diff = chosen.float() - rejected.float()
    if margin is not None:
        diff = diff - margin.float()
    return -F.logsigmoid(diff)


def pair_scores(batch: dict[str, torch.Tensor], scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                              torch.Tensor]:
    """(chosen, rejected, margin) scores of every real pair of the micro-batch, flattened."""
    index, margin = batch["pair_index"], batch["pair_margin"]
    scores = scores.reshape(scores.shape[0], -1)  # [b, s]
    real = index[..., 0] >= 0
    rows = torch.arange(index.shape[0], device=index.device).unsqueeze(1).expand_as(index[..., 0])
    chosen = scores[rows[real], index[..., 0][real]]
    rejected = scores[rows[real], index[..., 1][real]]
    return chosen, rejected, margin[real]


def bradley_terry_loss(batch: dict[str, torch.Tensor], scores: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(loss sum, pair count, stats) of a micro-batch; stats also count right orderings (a tie is 0.5)."""
    chosen, rejected, margin = pair_scores(batch, scores)
    loss = bradley_terry(chosen, rejected, margin)
    loss_sum = loss.sum()
    count = torch.tensor(len(loss), dtype=torch.int, device=loss.device)
    right = (chosen > rejected).double().sum() + 0.5 * (chosen == rejected).double().sum()
    gap = (chosen.float() - rejected.float()).detach().double().sum()
    return loss_sum, count, {"loss_sum": loss_sum.detach(), "pairs": count.detach().double(), "right": right.detach(),
                             "reward_gap_sum": gap}
