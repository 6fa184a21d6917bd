"""Sample from the *training* megatron model itself: the rollout engine that needs no vLLM.

It needs no second copy of the weights and no conversion, so what is sampled is exactly the
policy being trained (CPU tests, tiny models, and any layout vLLM is not installed for).

Two loops over the same token choice, stop rules and seeds:

* **KV-cached** (default, ``generation.kv_cache=true``): megatron-core's
  ``StaticInferenceContext`` keeps every layer's keys/values, so each new token costs one
  position's forward instead of the whole sequence's. The batch runs in lock-step over
  positions: the prefill covers the shortest prompt, and rows whose prompt is longer are
  teacher-forced with their own prompt tokens until they reach its end (megatron's static
  engine does the same). All rows therefore share one cache length and no row ever attends
  to padding, so no attention mask is needed (decode steps have one query: nothing to mask;
  the prefill is causal). Requests are sorted by prompt length before batching, which keeps
  the forced stretch short. Rows that finish are dropped from the batch and from the cache.
* **Full recompute** (``generation.kv_cache=false``): every step re-runs the forward over the
  whole (growing) batch. O(n²) per sequence; kept as the reference the cached loop is tested
  against (greedy outputs are identical).

Why not megatron's ``StaticInferenceEngine`` controller: it seeds from one global RNG (no
per-request seed) and knows neither our stop strings nor our finish reasons.

Seeds: each request draws its uniforms from ``torch.Generator().manual_seed(seed)`` up
front, and sampling is inverse-CDF over the top-p-filtered distribution. So an output
depends only on (prompt, seed, config), never on which other requests share the batch or
on the rank: the same semantics as vLLM's per-request seed. Two requests with the same
prompt *and* seed give the same text; GRPO gives its G samples distinct seeds.

Tensor parallelism: every TP rank gathers the last-position logits (``[B, V]``, one
position only), chooses the same token deterministically, and TP rank 0's choice is then
broadcast over the TP group, so all ranks provably continue with identical tokens.
Pipeline parallelism and sequence parallelism are not supported (use ``rollout_engine=vllm``).

Stops: any id in ``eos_token_ids`` (excluded from text and token count, like the 🤗
engine) or a stop string appearing in the decoded continuation (kept in the text: the
verdict parser needs ``</answer>``; the text is cut right after it); otherwise
``max_new_tokens`` gives finish_reason "length".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from nemo_thinkrm.generation.interface import (
    GenerationConfig,
    GenerationOutput,
    GenerationRequest,
    RolloutEngine,
    RolloutSetup,
)
from nemo_thinkrm.models.tp_comm import gather_vocab_logits
from nemo_thinkrm.runtime.device import to_device, to_host
from nemo_thinkrm.runtime.distributed import all_gather_objects, data_parallel_coords
from nemo_thinkrm.training.engine import unwrap


class MegatronSampler(RolloutEngine):
    """Batched sampling from megatron model chunks (PP=1, any TP), KV-cached or full recompute.

    A ``RolloutEngine`` whose weights are the trainer's own (no weight sync: nothing to load
    before a rollout, nothing to release after it) and whose replicas are the trainer's DP replicas.
    """

    @classmethod
    def from_setup(cls, setup: RolloutSetup) -> "MegatronSampler":
        return cls(setup.chunks, setup.tokenizer, setup.generation, setup.eos_token_ids, setup.stop_strings)

    def replicas(self) -> tuple[int, int]:
        """The trainer's data-parallel replicas (the TP ranks of one replica sample together)."""
        return data_parallel_coords()

    def gather_shares(self, local: list[GenerationOutput]) -> list[list[GenerationOutput]]:
        return all_gather_objects(local, over_data_parallel=True)

    def __init__(self, chunks: list[torch.nn.Module], tokenizer: Any, cfg: GenerationConfig,
                 eos_token_ids: list[int], stop_strings: Optional[list[str]] = None) -> None:
        from megatron.core import parallel_state as ps

        if ps.get_pipeline_model_parallel_world_size() > 1 or len(chunks) != 1:
            raise NotImplementedError("MegatronSampler needs pipeline_model_parallel_size=1 (one model chunk); "
                                      "use the vLLM engine for rollouts from a pipelined policy")
        model_cfg = unwrap(chunks[0]).thinkrm_model_config
        if unwrap(chunks[0]).config.sequence_parallel:
            raise NotImplementedError("MegatronSampler cannot decode one position at a time with "
                                      "parallel.sequence_parallel=true; use rollout_engine=vllm")
        cfg.check_sampling()
        self.chunks = chunks
        self.tok = tokenizer
        self.cfg = cfg
        self.eos = torch.tensor(sorted(set(eos_token_ids)), dtype=torch.long)
        self.stop_strings = list(stop_strings if stop_strings is not None else (cfg.stop or []))
        self.vocab_size = model_cfg.vocab_size
        self.max_positions = model_cfg.max_position_embeddings
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = int(pad) if pad is not None else 0

    # ------------------------------------------------------------------ public API
    def generate(self, requests: Sequence[GenerationRequest], progress: bool = False) -> list[GenerationOutput]:
        """One output per request, in order, with its prompt/output token ids (prompts too long for the
        model get ``error``). Call on all TP ranks."""
        t0 = time.time()
        prompts = [self.tok(r.prompt, add_special_tokens=False)["input_ids"] for r in requests]
        out: list[Optional[GenerationOutput]] = [None] * len(requests)
        ok = []
        for i, ids in enumerate(prompts):
            if not ids or len(ids) >= self.max_positions:
                out[i] = GenerationOutput(requests[i].id, "", 0, "length", prompt_ids=list(ids), error=(
                    f"prompt has {len(ids)} tokens; the model allows 1..{self.max_positions - 1}"))
            else:
                ok.append(i)
        ok.sort(key=lambda i: len(prompts[i]))  # similar lengths per batch: a short forced stretch (KV loop)
        bs = max(1, self.cfg.batch_size)
        batches = [ok[k:k + bs] for k in range(0, len(ok), bs)]
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(ok), desc="sampling", unit="row")
        modes = [c.training for c in self.chunks]
        for c in self.chunks:
            c.eval()
        try:
            with torch.no_grad():
                for batch in batches:
                    res = self._sample_batch([prompts[i] for i in batch], [requests[i].seed for i in batch])
                    for i, (ids, text, reason) in zip(batch, res):
                        out[i] = GenerationOutput(requests[i].id, text, len(ids), reason, prompt_ids=list(prompts[i]),
                                                  output_ids=ids)
                    if bar:
                        bar.update(len(batch))
        finally:
            for c, m in zip(self.chunks, modes):
                c.train(m)
            if bar:
                bar.close()
        latency = (time.time() - t0) / max(1, len(requests))
        for o in out:
            o.latency_s = latency
        return out

    # ------------------------------------------------------------------ internals
    def _uniforms(self, seeds: list[int], n: int) -> torch.Tensor:
        """``[B, n]`` per-request uniforms (independent of batch composition)."""
        return torch.stack([torch.rand(n, generator=torch.Generator().manual_seed(int(s)), dtype=torch.float64)
                            for s in seeds])

    def _next_logits(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Full-vocabulary float32 logits ``[B, V]`` at each row's last position."""
        from megatron.core import parallel_state as ps

        # [B, S, V/tp], on the device
        out = self.chunks[0](to_device(tokens[:, :int(lengths.max())]), None, None)
        last = out[torch.arange(tokens.shape[0]), lengths - 1].float()
        return gather_vocab_logits(last, self.vocab_size, ps.get_tensor_model_parallel_group())

    def _choose(self, logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Greedy (temperature 0) or top-p sampling by inverse CDF with uniforms ``u [B]``."""
        if self.cfg.temperature == 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits / self.cfg.temperature, -1).double()
        sorted_p, order = probs.sort(-1, descending=True)
        keep = (sorted_p.cumsum(-1) - sorted_p) < self.cfg.top_p  # the first token is always kept
        cum = (sorted_p * keep).cumsum(-1)
        pos = torch.searchsorted(cum, (u * cum[:, -1])[:, None], right=True)[:, 0]
        pos = torch.minimum(pos, keep.sum(-1) - 1)
        return order.gather(-1, pos[:, None])[:, 0]

    def _broadcast_tp(self, ids: torch.Tensor) -> torch.Tensor:
        """TP rank 0's choice wins on every TP rank (guards against any rank divergence)."""
        import torch.distributed as dist
        from megatron.core import parallel_state as ps

        if ps.get_tensor_model_parallel_world_size() > 1:
            dist.broadcast(ids, src=ps.get_tensor_model_parallel_src_rank(),
                           group=ps.get_tensor_model_parallel_group())
        return ids

    def _hit_stop_string(self, rows: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor,
                         n_gen: torch.Tensor) -> torch.Tensor:
        """Bool ``[len(rows)]``: the decoded continuation of each row contains a stop string."""
        if not self.stop_strings or rows.numel() == 0:
            return torch.zeros(rows.numel(), dtype=torch.bool)
        starts = (lengths - n_gen)[rows].tolist()
        ends = lengths[rows].tolist()
        texts = self.tok.batch_decode([tokens[r, a:b].tolist() for r, a, b in zip(rows.tolist(), starts, ends)],
                                      skip_special_tokens=False)
        return torch.tensor([any(s in t for s in self.stop_strings) for t in texts], dtype=torch.bool)

    def _start(self, prompts: list[list[int]], seeds: list[int]) -> "_Batch":
        b = len(prompts)
        plen = torch.tensor([len(p) for p in prompts])
        budget = torch.clamp(self.max_positions - plen, max=self.cfg.max_new_tokens)  # per-row new-token cap
        tokens = torch.full((b, int((plen + budget).max())), self.pad_id, dtype=torch.long)
        for r, p in enumerate(prompts):
            tokens[r, :len(p)] = torch.tensor(p)
        zeros = torch.zeros(b, dtype=torch.bool)
        return _Batch(tokens, plen, budget, self._uniforms(seeds, int(budget.max())), plen.clone(),
                      torch.zeros(b, dtype=torch.long), zeros.clone(), zeros.clone(), zeros.clone())

    def _advance(self, st: "_Batch", rows: torch.Tensor, logits: torch.Tensor) -> None:
        """Choose the next token of ``rows`` from their logits ``[len(rows), V]`` and apply the stop rules."""
        # token choice on the device next to the logits; the chosen ids come back to the host
        nxt = to_host(self._broadcast_tp(self._choose(logits, to_device(st.u[rows, st.n_gen[rows]])).contiguous()))
        is_eos = torch.isin(nxt, self.eos)
        st.eos_hit[rows] = is_eos
        keep_rows = rows[~is_eos]
        st.tokens[keep_rows, st.lengths[keep_rows]] = nxt[~is_eos]
        st.lengths[keep_rows] += 1
        st.n_gen[keep_rows] += 1
        st.stop_hit[keep_rows] = self._hit_stop_string(keep_rows, st.tokens, st.lengths, st.n_gen)
        st.done[rows] = is_eos
        st.done |= st.stop_hit | (st.n_gen >= st.budget)

    def _sample_batch(self, prompts: list[list[int]], seeds: list[int]) -> list[tuple[list[int], str, str]]:
        """(generated ids, text, finish reason) per prompt."""
        st = self._start(prompts, seeds)
        if self.cfg.kv_cache:
            self._run_cached(st)
        else:
            while not bool(st.done.all()):
                rows = (~st.done).nonzero()[:, 0]
                self._advance(st, rows, self._next_logits(st.tokens[rows], st.lengths[rows]))
        return [self._finish(st.tokens[r, st.plen[r]:st.lengths[r]].tolist(), bool(st.eos_hit[r]),
                             bool(st.stop_hit[r])) for r in range(len(prompts))]

    def _run_cached(self, st: "_Batch") -> None:
        """The lock-step KV-cached loop (see the module doc): one position per forward after the prefill."""
        from megatron.core.inference.contexts import StaticInferenceContext

        ctx = StaticInferenceContext(st.tokens.shape[0], st.tokens.shape[1])
        pos = int(st.plen.min())
        live = torch.arange(st.tokens.shape[0])  # batch rows, in cache order
        logits = self._cached_logits(st.tokens[:, :pos], ctx)
        while True:
            # at ``pos`` a row either continues its own prompt (forced) or generates
            generating = st.plen[live] <= pos
            if bool(generating.any()):
                self._advance(st, live[generating], logits[to_device(generating)])
            keep = ~st.done[live]
            if not bool(keep.any()):
                return
            if not bool(keep.all()):
                _keep_cache_rows(ctx, to_device(keep.nonzero()[:, 0]))
                live = live[keep]
            logits = self._cached_logits(st.tokens[live, pos:pos + 1], ctx)
            pos += 1

    def _cached_logits(self, tokens: torch.Tensor, ctx) -> torch.Tensor:
        """Feed ``tokens [B, s]`` at the cache's current offset; full-vocabulary float32 logits of the last one."""
        # megatron gathers the vocab shards itself in inference mode: [B, 1, padded V]
        out = self.chunks[0](to_device(tokens), None, None, inference_context=ctx, runtime_gather_output=True)
        ctx.increment_sequence_len_offset(tokens.shape[1])
        return out[:, -1, :self.vocab_size].float()

    def _finish(self, ids: list[int], eos: bool, stopped: bool) -> tuple[list[int], str, str]:
        text = self.tok.decode(ids, skip_special_tokens=False)
        if stopped:
            end = min(text.find(s) + len(s) for s in self.stop_strings if s in text)
            text = text[:end]
        return ids, text, "stop" if (eos or stopped) else "length"


def _keep_cache_rows(ctx, rows: torch.Tensor) -> None:
    """Shrink every layer's cached keys/values (``[s, B, ...]``) to ``rows``; megatron's own
    ``swap_key_value_dict`` only permutes (it asserts the batch size stays)."""
    for layer, (k, v) in ctx.key_value_memory_dict.items():
        ctx.key_value_memory_dict[layer] = (k[:, rows], v[:, rows])


@dataclass
class _Batch:
    """One sampling batch's state (host tensors, one row per request)."""

    tokens: torch.Tensor
    """``[B, max prompt + budget]``: the prompt, then the generated ids."""
    plen: torch.Tensor
    budget: torch.Tensor
    """Per-row new-token cap (``max_new_tokens``, less near the model's position limit)."""
    u: torch.Tensor
    lengths: torch.Tensor
    n_gen: torch.Tensor
    done: torch.Tensor
    eos_hit: torch.Tensor
    stop_hit: torch.Tensor
