"""Preference pairs as a Bradley-Terry reward model trains on them: (prompt + chosen, prompt + rejected)
token sequences, several pairs packed per row.

Each response is the assistant turn of the same chat-templated conversation, closed by the
end-of-turn token; the reward is read at that last token. Packing puts the chosen and the
rejected sequence of a pair (and further pairs) side by side in one row as separate segments:
attention never crosses segments (``models/sdpa_attention.py`` on CPU, THD on TE) and position
ids restart per segment, so a pair scores exactly as it would alone, and a row of short pairs
costs what its tokens cost instead of two padded rows per pair.

A pair longer than the row is dropped and counted (cutting it would move the scored token);
``builtin:arithmetic:N`` gives the embedded task: N training pairs "What is a + b?" with a right
and a wrong sum, and held-out pairs none of which occurs in training (``data/synthetic.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.data.records import PreferenceRecord
from nemo_thinkrm.data.synthetic import make_task_split
from nemo_thinkrm.models.tokenizer import encode_prompt_and_response

BUILTIN = "builtin:arithmetic"


@dataclass
class PairSample:
    id: str
    chosen: list[int]
    rejected: list[int]
    margin: float = 0.0

    @property
    def length(self) -> int:
        return len(self.chosen) + len(self.rejected)


@dataclass
class PairRow:
    """One packed row: token ids, segment ids (0 = padding), positions, and per pair the
    positions of its chosen and rejected last tokens."""

    input_ids: list[int] = field(default_factory=list)
    segment_ids: list[int] = field(default_factory=list)
    position_ids: list[int] = field(default_factory=list)
    pairs: list[tuple[int, int]] = field(default_factory=list)
    margins: list[float] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


def builtin_arithmetic(spec: str, n_heldout: int = 128, seed: int = 0) -> tuple[list[PreferenceRecord],
                                                                                  list[PreferenceRecord]]:
    """``builtin:arithmetic:N`` → (N training records, ``n_heldout`` held-out records)."""
    try:
        n = int(spec.split(":")[2])
    except (IndexError, ValueError):
        raise ConfigError(f"data.path={spec!r}: expected {BUILTIN}:N, e.g. {BUILTIN}:2048") from None
    train, held = make_task_split(12, n, n_heldout, seed=seed)

    def record(p) -> PreferenceRecord:
        return PreferenceRecord(id=p.id, context=({"role": "user", "content": p.question},),
                                response_a=p.response_a, response_b=p.response_b, label=p.label, source=BUILTIN)
    return [record(p) for p in train], [record(p) for p in held]


def tokenize_pair(rec: PreferenceRecord, tokenizer: Any, use_margin: bool) -> PairSample:
    """prompt + chosen and prompt + rejected ids; margin = the strength's magnitude when asked for."""
    prompt, chosen = encode_prompt_and_response(tokenizer, rec.context, rec.chosen, think_prefix=False)
    _, rejected = encode_prompt_and_response(tokenizer, rec.context, rec.rejected, think_prefix=False)
    margin = float(rec.strength_magnitude or 0) if use_margin else 0.0
    return PairSample(rec.id, prompt + chosen, prompt + rejected, margin)


def fit_pairs(samples: Sequence[PairSample], seq_length: int) -> tuple[list[PairSample], list[str]]:
    """(pairs that fit a row, ids of those dropped)."""
    kept = [s for s in samples if s.length <= seq_length]
    return kept, [s.id for s in samples if s.length > seq_length]


def pack_pairs(samples: Sequence[PairSample], seq_length: int, pad_id: int) -> list[PairRow]:
    """Greedy first-fit in the given order (the epoch's shuffle): deterministic per epoch."""
    rows: list[PairRow] = []
    for s in samples:
        if s.length > seq_length:
            raise ValueError(f"pair {s.id} has {s.length} tokens > seq_length {seq_length}; apply fit_pairs")
        row = next((r for r in rows if seq_length - len(r.input_ids) >= s.length), None)
        if row is None:
            row = PairRow()
            rows.append(row)
        ends = []
        for ids in (s.chosen, s.rejected):
            seg = len(row.ids) * 2 + len(ends) + 1
            row.input_ids += ids
            row.segment_ids += [seg] * len(ids)
            row.position_ids += list(range(len(ids)))
            ends.append(len(row.input_ids) - 1)
        row.pairs.append((ends[0], ends[1]))
        row.margins.append(s.margin)
        row.ids.append(s.id)
    for row in rows:
        pad = seq_length - len(row.input_ids)
        row.input_ids += [pad_id] * pad
        row.segment_ids += [0] * pad
        row.position_ids += [0] * pad
    return rows


def collate_pairs(rows: Sequence[PairRow]) -> dict[str, torch.Tensor]:
    """Host tensors of a micro-batch; ``pair_index`` ``[b, P, 2]`` (−1 = no pair), ``pair_margin`` ``[b, P]``."""
    most = max(len(r.pairs) for r in rows)
    index = torch.full((len(rows), most, 2), -1, dtype=torch.long)
    margin = torch.zeros(len(rows), most)
    for i, r in enumerate(rows):
        if r.pairs:
            index[i, :len(r.pairs)] = torch.tensor(r.pairs)
            margin[i, :len(r.pairs)] = torch.tensor(r.margins)
    return {"input_ids": torch.tensor([r.input_ids for r in rows], dtype=torch.long),
            "position_ids": torch.tensor([r.position_ids for r in rows], dtype=torch.long),
            "segment_ids": torch.tensor([r.segment_ids for r in rows], dtype=torch.long),
            "pair_index": index, "pair_margin": margin}
