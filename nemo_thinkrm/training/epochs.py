"""Epochs of packed rows for the supervised trainers (SFT, reward models): the rows of step N are
a pure function of (seed, N), which is what makes resume exact.

An epoch's order is a permutation seeded by (seed, epoch); the trainer's ``pack`` turns the
ordered samples into rows deterministically (SFT: samples per row, or one padded sample per
row; reward models: pairs per row). Rows are built on demand and cached (token lists only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from nemo_thinkrm.config.errors import ConfigError


@dataclass
class EpochPlan:
    samples: Sequence[Any]
    seed: int
    global_batch: int
    """Rows per optimizer step."""
    pack: Callable[[list[Any]], list[Any]]
    """Ordered samples → rows (deterministic)."""

    def __post_init__(self) -> None:
        self._cache: dict[int, list[Any]] = {}

    def rows(self, epoch: int) -> list[Any]:
        if epoch not in self._cache:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = [self.samples[i] for i in torch.randperm(len(self.samples), generator=g).tolist()]
            self._cache[epoch] = self.pack(order)
        return self._cache[epoch]

    def steps_in(self, epoch: int) -> int:
        return len(self.rows(epoch)) // self.global_batch

    def locate(self, step: int) -> tuple[int, int]:
        """1-based step → (epoch, index of its first row in that epoch)."""
        remaining, epoch = step - 1, 0
        while True:
            n = self.steps_in(epoch)
            if n == 0:
                raise ConfigError(f"an epoch packs into {len(self.rows(epoch))} sequences, fewer than "
                                  f"global_batch_size={self.global_batch}; lower it or add data")
            if remaining < n:
                return epoch, remaining * self.global_batch
            remaining -= n
            epoch += 1

    def step_rows(self, step: int) -> tuple[int, int, list[Any]]:
        """(epoch, first row index, rows) of a 1-based step."""
        epoch, start = self.locate(step)
        return epoch, start, self.rows(epoch)[start:start + self.global_batch]

    def micro_batches(self, step: int, state, *, dp_rank: int, dp_size: int, micro_batch: int, n_micro: int,
                      to_batch: Callable[[list[Any]], dict]) -> list[dict]:
        """This data-parallel rank's micro-batches of a 1-based step; records where the step's rows
        start in ``state`` (``epoch``, ``data_state``) so a checkpoint says where the data was."""
        epoch, start, rows = self.step_rows(step)
        state.epoch, state.data_state = epoch, {"epoch": epoch, "row_offset": start}
        mine = rows[dp_rank::dp_size]
        return [to_batch(mine[k * micro_batch:(k + 1) * micro_batch]) for k in range(n_micro)]


def hold_out(items: Sequence[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """(the rest in its original order, a seeded random ``fraction`` of ``items`` held out: at least one)."""
    perm = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, int(len(items) * fraction))
    return [items[i] for i in sorted(perm[n_val:])], [items[i] for i in perm[:n_val]]
