"""The CUDA→CPU layer: each patch does what its comment claims, and megatron's
CUDA-assuming paths (RNG tracker, memory buffer, DDP + distributed optimizer,
dist checkpointing) run on CPU. A megatron upgrade that adds a new hard-coded
CUDA call makes one of these fail."""

from __future__ import annotations

import pytest
import torch

from nemo_thinkrm.runtime import cpu_compat

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="CPU-only layer")


def test_applied_once_and_idempotent():
    assert cpu_compat.apply_cpu_compat() is True
    assert cpu_compat.apply_cpu_compat() is True
    assert cpu_compat.cpu_compat_active()
    assert torch.cuda.current_device() == "cpu"


def test_cuda_device_kwargs_and_methods_land():
    cpu_compat.apply_cpu_compat()
    t = torch.zeros(3, device="cuda")
    assert t.device.type == "cpu"
    assert torch.empty(2, device=torch.device("cuda", 0)).device.type == "cpu"
    assert t.cuda() is t
    assert t.to("cuda").device.type == "cpu"
    assert t.pin_memory() is t
    # megatron's optimizers compare against the CUDA type names
    assert t.type() == "torch.cuda.FloatTensor"
    assert t.bfloat16().type() == "torch.cuda.BFloat16Tensor"
    # dtype conversion through .type(dtype) still converts
    assert t.type(torch.float64).dtype == torch.float64


def test_streams_events_synchronize_are_noops():
    cpu_compat.apply_cpu_compat()
    torch.cuda.synchronize()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        e = torch.cuda.Event(enable_timing=True)
        e.record()
    assert e.query()
    torch.cuda.nvtx.range_push("x")
    torch.cuda.nvtx.range_pop()


def test_rng_tracker_forks_reproducible_cpu_streams(megatron_single):
    from megatron.core import tensor_parallel

    tensor_parallel.model_parallel_cuda_manual_seed(7)
    tracker = tensor_parallel.get_cuda_rng_tracker()
    before = torch.rand(1)
    with tracker.fork():
        a = torch.rand(4)
    after_default = torch.rand(1)
    tensor_parallel.model_parallel_cuda_manual_seed(7)
    torch.manual_seed(0)
    with tracker.fork():
        b = torch.rand(4)
    assert torch.equal(a, b), "the model-parallel stream must depend only on its seed"
    assert not torch.equal(before, after_default)


def test_global_memory_buffer_allocates(megatron_single):
    from megatron.core import parallel_state

    buf = parallel_state.get_global_memory_buffer().get_tensor((2, 3), torch.float32, "probe")
    assert buf.device.type == "cpu" and buf.shape == (2, 3)


def test_ddp_distributed_optimizer_and_dist_checkpoint_roundtrip(megatron_single, tmp_path):
    """The canary: a full train step through megatron DDP + distributed optimizer,
    then a dist-checkpoint save/load (the async writer calls torch.cuda.synchronize)."""
    from megatron.core import dist_checkpointing

    from nemo_thinkrm.algorithms.lm_loss import masked_token_loss
    from nemo_thinkrm.config.optim import OptimConfig
    from nemo_thinkrm.config.parallel import ParallelConfig
    from nemo_thinkrm.examples.tiny_hf import tiny_model_config
    from nemo_thinkrm.training.engine import (build_engine_model, build_optimizer, configure_for_training,
                                              train_step, unwrap)

    cfg = tiny_model_config("llama", init_std=0.02)
    par = ParallelConfig()
    chunks = build_engine_model(cfg, par)
    configure_for_training(chunks)
    opt, sched = build_optimizer(chunks, OptimConfig(lr=1e-3, warmup_fraction=0.0, schedule="constant"),
                                 par, "float32", 4)
    from nemo_thinkrm.checkpoint.training_state import optimizer_kind
    assert optimizer_kind(opt) == "distributed"  # par is not resolved for the world: the canary keeps it
    ids = torch.randint(0, cfg.vocab_size, (2, 17), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids[:, :-1], "labels": ids[:, 1:], "loss_mask": torch.ones(2, 16)}
    before = [p.detach().clone() for p in unwrap(chunks[0]).parameters()]
    result = train_step(chunks, opt, sched, [batch], masked_token_loss)
    assert result.stats["tokens"] == 32 and result.grad_norm > 0 and not result.skipped
    changed = sum(not torch.equal(a, b) for a, b in zip(before, unwrap(chunks[0]).parameters()))
    assert changed == len(before), "every parameter must receive an update"

    model = unwrap(chunks[0])
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    dist_checkpointing.save(model.sharded_state_dict(), str(ckpt))
    fresh = build_engine_model(cfg, par, wrap_ddp=False)[0]
    loaded = dist_checkpointing.load(fresh.sharded_state_dict(), str(ckpt))
    fresh.load_state_dict(loaded)
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), name


def test_not_applied_when_cuda_is_present():
    """On a GPU host the layer must leave torch.cuda alone (checked in a fresh process)."""
    import subprocess
    import sys

    code = ("import torch\n"
            "torch.cuda.is_available = lambda: True\n"
            "orig = torch.cuda.current_device\n"
            "from nemo_thinkrm.runtime import cpu_compat\n"
            "assert cpu_compat.apply_cpu_compat() is False\n"
            "assert torch.cuda.current_device is orig\n"
            "assert not cpu_compat.cpu_compat_active()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
