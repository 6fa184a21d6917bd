"""Scalar reward models as judges: one interface, the way ``interface.py`` has one for generators.

A ``RewardScorer`` turns (conversation, response) requests into one score each, in order, and never
drops one: a request it cannot score (longer than the model's context) comes back with ``error``
set and no score, so callers count it. Every place that asks a reward model (``thinkrm eval`` /
``robustness`` with ``generation.backend=reward_model``, pairwise RLHF with
``judge.kind=reward_model``, ``thinkrm best-of-n``) goes through it.

The engine here is 🤗 transformers' ``*ForSequenceClassification`` (what ``thinkrm convert`` and
the evaluation runner export a ``thinkrm rm`` checkpoint to; ``checkpoint/hf_export.py``), on the
compute device. Each sequence is tokenised exactly as ``thinkrm rm`` trained on it
(``data/reward_pairs.py``: the chat-templated prompt, the response, the end-of-turn token) and scored
at its last token. Requests are sorted by length and batched, so a batch pads to similar lengths.
"""

from __future__ import annotations

import abc
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.models.tokenizer import encode_prompt_and_response
from nemo_thinkrm.runtime.device import place_module, to_device, to_host

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreRequest:
    id: str
    context: tuple
    """The conversation before the response (chat messages, ``data/records.py: Message``)."""
    response: str


@dataclass
class ScoreOutput:
    id: str
    score: Optional[float]
    tokens: int
    error: Optional[str] = None


class RewardScorer(abc.ABC):
    """A reward model. ``score`` is synchronous; engines batch internally."""

    @abc.abstractmethod
    def score(self, requests: Sequence[ScoreRequest], progress: bool = False) -> list[ScoreOutput]:
        """One output per request, in order; the ones that could not be scored have ``error`` set."""

    def close(self) -> None:
        """Release the model (optional)."""


class HFRewardScorer(RewardScorer):
    def __init__(self, model_dir: str, batch_size: int = 16, max_length: Optional[int] = None) -> None:
        import transformers

        if not model_dir:
            raise ConfigError("a reward model scorer needs a 🤗 *ForSequenceClassification directory")
        config = transformers.AutoConfig.from_pretrained(model_dir)
        archs = getattr(config, "architectures", None) or []
        if not any(a.endswith("ForSequenceClassification") for a in archs) or config.num_labels != 1:
            raise ConfigError(f"{model_dir} is {archs} with {config.num_labels} labels, not a reward model "
                              "(a *ForSequenceClassification with num_labels=1, e.g. from thinkrm rm)")
        self.tok = transformers.AutoTokenizer.from_pretrained(model_dir)
        if config.pad_token_id is None:
            raise ConfigError(f"{model_dir}/config.json has no pad_token_id: transformers cannot find the scored "
                              "token in a padded batch")
        self.pad_id = config.pad_token_id
        self.model = place_module(transformers.AutoModelForSequenceClassification.from_pretrained(
            model_dir, dtype="auto").eval())
        self.batch_size = max(1, batch_size)
        self.max_length = max_length or config.max_position_embeddings
        self.tokens_scored = 0
        self.seconds = 0.0

    def encode(self, req: ScoreRequest) -> list[int]:
        prompt, response = encode_prompt_and_response(self.tok, req.context, req.response, think_prefix=False)
        return prompt + response

    def score(self, requests: Sequence[ScoreRequest], progress: bool = False) -> list[ScoreOutput]:
        t0 = time.time()
        ids = [self.encode(r) for r in requests]
        out: list[Optional[ScoreOutput]] = [None] * len(requests)
        todo = []
        for i, (r, seq) in enumerate(zip(requests, ids)):
            if len(seq) > self.max_length:
                out[i] = ScoreOutput(r.id, None, len(seq), f"over-length: {len(seq)} tokens > {self.max_length}")
            else:
                todo.append(i)
        todo.sort(key=lambda i: len(ids[i]))
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(requests), desc="scoring", unit="seq", initial=len(requests) - len(todo))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            for i, s in zip(chunk, self._score_batch([ids[i] for i in chunk])):
                out[i] = ScoreOutput(requests[i].id, s, len(ids[i]))
            if bar:
                bar.update(len(chunk))
        if bar:
            bar.close()
        self.tokens_scored += sum(len(ids[i]) for i in todo)
        self.seconds += time.time() - t0
        return [o for o in out if o is not None]

    def _score_batch(self, seqs: list[list[int]]) -> list[float]:
        width = max(map(len, seqs))
        input_ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros(len(seqs), width, dtype=torch.long)
        for k, s in enumerate(seqs):
            input_ids[k, :len(s)] = torch.tensor(s)
            mask[k, :len(s)] = 1
        with torch.no_grad():
            logits = self.model(**to_device({"input_ids": input_ids, "attention_mask": mask})).logits
        scores = to_host(logits[:, 0].float()).tolist()
        if not all(math.isfinite(s) for s in scores):
            raise RuntimeError(f"reward model returned non-finite scores {scores}")
        return scores

    def close(self) -> None:
        if self.seconds:
            logger.info("reward model scored %d tokens in %.1f s (%.0f tokens/s)", self.tokens_scored, self.seconds,
                        self.tokens_scored / self.seconds)
        self.model = None


def build_scorer(model_dir: str, batch_size: int = 16, max_length: Optional[int] = None) -> RewardScorer:
    return HFRewardScorer(model_dir, batch_size=batch_size, max_length=max_length)


def requests_for_pair(record_id: str, context: Any, response_a: str, response_b: str) -> list[ScoreRequest]:
    """The two requests of one pair (ids ``<id>:A`` / ``<id>:B``)."""
    ctx = tuple(dict(m) for m in context)
    return [ScoreRequest(f"{record_id}:A", ctx, response_a), ScoreRequest(f"{record_id}:B", ctx, response_b)]
