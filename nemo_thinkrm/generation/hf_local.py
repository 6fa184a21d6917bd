"""🤗 transformers generation on CPU: the test/tiny-model engine (real sampling, no server).

Requests are grouped by seed; each group is generated in batches of
``generation.batch_size`` with ``torch.manual_seed(seed)`` set first, so a given
(prompt set, seed) reproduces. Left padding, sampling per the config, stops at
the end-of-turn token.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Optional, Sequence

import torch

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.generation.interface import GenerationConfig, GenerationOutput, GenerationRequest, Generator
from nemo_thinkrm.models.tokenizer import stop_token_ids


class HFGenerator(Generator):
    def __init__(self, cfg: GenerationConfig, model_path: Optional[str]) -> None:
        import transformers

        path = cfg.model or model_path
        if not path:
            raise ConfigError("generation.backend=hf needs a 🤗 model directory (generation.model or model.hf_path)")
        self.cfg = cfg
        self.tok = transformers.AutoTokenizer.from_pretrained(path)
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        self.eos_ids = stop_token_ids(self.tok)

    def generate(self, requests: Sequence[GenerationRequest], progress: bool = False) -> list[GenerationOutput]:
        by_seed: dict[int, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            by_seed[r.seed].append(i)
        out: list[Optional[GenerationOutput]] = [None] * len(requests)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(requests), desc="generating", unit="row")
        bs = max(1, self.cfg.batch_size)
        for seed, idx in sorted(by_seed.items()):
            torch.manual_seed(seed)
            for start in range(0, len(idx), bs):
                chunk = idx[start:start + bs]
                for i, o in zip(chunk, self._generate_batch([requests[i] for i in chunk])):
                    out[i] = o
                if bar:
                    bar.update(len(chunk))
        if bar:
            bar.close()
        return [o for o in out if o is not None]

    def _generate_batch(self, reqs: list[GenerationRequest]) -> list[GenerationOutput]:
        t0 = time.time()
        enc = self.tok([r.prompt for r in reqs], return_tensors="pt", padding=True, add_special_tokens=False)
        sample = self.cfg.temperature > 0
        with torch.no_grad():
            gen = self.model.generate(
                **enc, max_new_tokens=self.cfg.max_new_tokens, do_sample=sample,
                temperature=self.cfg.temperature if sample else None, top_p=self.cfg.top_p if sample else None,
                eos_token_id=self.eos_ids, pad_token_id=self.tok.pad_token_id)
        new = gen[:, enc["input_ids"].shape[1]:]
        dt = (time.time() - t0) / len(reqs)
        outs = []
        for r, row in zip(reqs, new):
            ids = row.tolist()
            stop_at = next((k for k, t in enumerate(ids) if t in self.eos_ids), None)
            finish = "stop" if stop_at is not None else "length"
            ids = ids[:stop_at] if stop_at is not None else ids
            outs.append(GenerationOutput(r.id, self.tok.decode(ids, skip_special_tokens=False), len(ids),
                                         finish, latency_s=dt))
        return outs
