"""The one CUDA→CPU compatibility layer for megatron-core.

megatron-core 0.16.1 assumes CUDA in many places. On a CPU-only host (laptops, CI,
the 2-core dev machines this project is tested on) those calls fail. Every
workaround lives in this module, is applied only when ``torch.cuda.is_available()``
is False, and is exercised by ``tests/unit/runtime/test_cpu_compat.py`` so that a
megatron upgrade that adds a new hard-coded CUDA call fails a test instead of a
user's run.

What is patched, and the failure each patch fixes:

1. ``torch.cuda.current_device`` → ``"cpu"``.
   Fails in: ``GlobalMemoryBuffer.get_tensor`` (attention forward), RoPE
   (``rotary_pos_embedding`` moves ``inv_freq`` to the current device),
   ``get_default_causal_mask``, p2p pipeline buffers, DDP grad buffers — all
   allocate with ``device=torch.cuda.current_device()`` ("Torch not compiled
   with CUDA enabled").
2. RNG: ``torch.cuda.get_rng_state`` / ``set_rng_state`` / ``manual_seed`` and
   megatron's ``tensor_parallel.random._get_cuda_rng_state`` /
   ``_set_cuda_rng_state`` map to the CPU generator.
   Fails in: ``model_parallel_cuda_manual_seed`` and the RNG tracker's
   ``add``/``fork`` (used by every TP layer's init and by dropout).
3. A ``TorchFunctionMode`` that rewrites ``device="cuda"`` keyword arguments,
   ``Tensor.cuda()``, ``Tensor.to("cuda")`` and ``pin_memory`` to CPU no-ops, and
   reports CPU tensors' ``Tensor.type()`` as the ``torch.cuda.*`` names.
   Fails in: DDP ``param_and_grad_buffer`` (``torch.zeros(..., device='cuda')``),
   pipeline schedules, ``clip_grads`` (asserts
   ``grad.type() == 'torch.cuda.FloatTensor'``), mixed-precision optimizers
   (``param.type() in ['torch.cuda.HalfTensor', ...]``).
4. Streams, events, ``synchronize``, ``empty_cache``, NVTX ranges → no-ops.
   Fails in: the dist-checkpoint async writer (``torch.cuda.synchronize``),
   DDP overlap paths (``torch.cuda.current_stream``), timers/NVTX ranges.

Nothing here changes numerics: every patched call is either an allocation
placement (CPU is the only device) or a synchronisation primitive (CPU ops are
synchronous).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Callable

import torch
from torch.overrides import TorchFunctionMode

logger = logging.getLogger(__name__)

_APPLIED = False
_LOCK = threading.Lock()

# Tensor.type() names on CPU → the CUDA names megatron compares against.
_CPU_TO_CUDA_TYPE_NAME = {
    "torch.FloatTensor": "torch.cuda.FloatTensor",
    "torch.HalfTensor": "torch.cuda.HalfTensor",
    "torch.BFloat16Tensor": "torch.cuda.BFloat16Tensor",
    "torch.DoubleTensor": "torch.cuda.DoubleTensor",
    "torch.LongTensor": "torch.cuda.LongTensor",
    "torch.IntTensor": "torch.cuda.IntTensor",
}


def _is_cuda_device(device: Any) -> bool:
    if device is None:
        return False
    if isinstance(device, torch.device):
        return device.type == "cuda"
    if isinstance(device, str):
        return device.startswith("cuda")
    # An int device index means a CUDA ordinal in torch's device arguments.
    return isinstance(device, int) and not isinstance(device, bool)


class CudaToCpuMode(TorchFunctionMode):
    """Rewrites CUDA placements to CPU for every torch call made while active (patch 3)."""

    def __torch_function__(self, func: Callable, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if "device" in kwargs and _is_cuda_device(kwargs["device"]):
            kwargs["device"] = "cpu"
        if func is torch.Tensor.cuda or func is torch.Tensor.pin_memory:
            return args[0]
        if func is torch.Tensor.is_pinned:
            return False
        if func is torch.Tensor.to:
            args = tuple("cpu" if _is_cuda_device(a) and not isinstance(a, int) else a for a in args)
        if func is torch.Tensor.type and len(args) == 1 and not kwargs:
            name = func(*args)
            return _CPU_TO_CUDA_TYPE_NAME.get(name, name)
        return func(*args, **kwargs)


class _NullStream:
    """Stand-in for ``torch.cuda.Stream``: CPU work is already ordered (patch 4)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def wait_stream(self, *args: Any, **kwargs: Any) -> None:
        pass

    def wait_event(self, *args: Any, **kwargs: Any) -> None:
        pass

    def record_event(self, *args: Any, **kwargs: Any) -> "_NullEvent":
        return _NullEvent()

    def synchronize(self) -> None:
        pass

    def query(self) -> bool:
        return True


class _NullEvent:
    """Stand-in for ``torch.cuda.Event`` (patch 4)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def record(self, *args: Any, **kwargs: Any) -> None:
        pass

    def wait(self, *args: Any, **kwargs: Any) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def query(self) -> bool:
        return True

    def elapsed_time(self, other: Any) -> float:
        return 0.0


def _noop(name: str) -> Callable[..., None]:
    """A distinct no-op per patched name: torch._dynamo indexes torch.cuda functions by
    identity and refuses one object registered under two names."""

    def noop(*args: Any, **kwargs: Any) -> None:
        return None

    noop.__name__ = noop.__qualname__ = f"cpu_compat_noop_{name}"
    return noop


def _cpu_get_rng_state(device: Any = "cuda") -> torch.Tensor:
    return torch.get_rng_state()


def _cpu_set_rng_state(new_state: torch.Tensor, device: Any = -1, *args: Any, **kwargs: Any) -> None:
    torch.set_rng_state(new_state)


def _cpu_manual_seed(seed: int) -> None:
    # Not torch.manual_seed: that calls torch.cuda.manual_seed_all, which must stay a no-op.
    torch.default_generator.manual_seed(int(seed))


def _megatron_get_rng_state(device: Any = "cuda", clone: bool = False, graph_safe: bool = False) -> torch.Tensor:
    state = torch.get_rng_state()
    return state.clone() if clone else state


def _megatron_set_rng_state(new_state: torch.Tensor, device: int = -1, graph_safe: bool = False) -> None:
    torch.set_rng_state(new_state)


def _patch_torch_cuda() -> None:
    cuda = torch.cuda
    cuda.current_device = lambda: "cpu"  # patch 1
    cuda.get_rng_state = _cpu_get_rng_state  # patch 2
    cuda.set_rng_state = _cpu_set_rng_state
    cuda.manual_seed = _cpu_manual_seed
    cuda.manual_seed_all = _noop("manual_seed_all")
    cuda.Stream = _NullStream  # patch 4
    cuda.Event = _NullEvent
    cuda.current_stream = lambda *a, **k: _NullStream()
    cuda.default_stream = lambda *a, **k: _NullStream()
    cuda.stream = lambda *a, **k: contextlib.nullcontext()
    for name in ("set_stream", "synchronize", "empty_cache", "set_device"):
        setattr(cuda, name, _noop(name))
    cuda.nvtx.range_push = _noop("range_push")
    cuda.nvtx.range_pop = _noop("range_pop")
    cuda.nvtx.range = lambda *a, **k: contextlib.nullcontext()


def _patch_megatron() -> None:
    from megatron.core.tensor_parallel import random as mcore_random

    mcore_random._get_cuda_rng_state = _megatron_get_rng_state  # patch 2
    mcore_random._set_cuda_rng_state = _megatron_set_rng_state


_MODE: CudaToCpuMode | None = None


def apply_cpu_compat(force: bool = False) -> bool:
    """Apply every CPU workaround once per process; returns True when they are active.

    ``force`` applies them even if CUDA is present (only the tests use it).
    Safe to call many times and from every entry point.
    """
    global _APPLIED, _MODE
    with _LOCK:
        if _APPLIED:
            return True
        if torch.cuda.is_available() and not force:
            return False
        _patch_torch_cuda()
        _patch_megatron()
        _MODE = CudaToCpuMode()
        _MODE.__enter__()
        _APPLIED = True
        logger.debug("megatron-core CPU compatibility layer applied")
        return True


def cpu_compat_active() -> bool:
    return _APPLIED
