"""Device choice and the device boundary in one place: nothing else names CUDA.

Tensors are made on the host (data, collation, rollouts' bookkeeping) and cross to the
compute device at one boundary per path: ``to_device`` for batches (the engine's forward
step, the sampler's forward, log-prob micro-batches), ``place_module`` /
``offload_module`` for models, ``to_host`` for what comes back (log-probs, sampled ids).
Tensors a collective touches are made on ``collective_device()``: NCCL only takes CUDA
tensors, gloo only CPU ones.

``tests/device_audit.py`` checks this discipline on a CPU-only machine: it sets
``simulate_device`` so that ``compute_device()`` answers ``cuda:0`` while the arithmetic
stays on the CPU, and fails any op that mixes host tensors with "device" ones.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import Any, Callable, Optional

import torch

PIN_MIN_BYTES = 1 << 20  # host tensors at least this large go through pinned memory (async copy)

_SIMULATED: Optional[torch.device] = None
_PLACEMENT_HOOKS: list[Callable[[torch.nn.Module], None]] = []


def cuda_available() -> bool:
    return torch.cuda.is_available()


def compute_device() -> torch.device:
    """The device model tensors live on: the local GPU, or the CPU when there is none."""
    if _SIMULATED is not None:
        return _SIMULATED
    if cuda_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def default_backend() -> str:
    return "nccl" if cuda_available() else "gloo"


def collective_device() -> torch.device:
    """Where a tensor for a torch.distributed collective must live: the GPU under NCCL, else the CPU."""
    import torch.distributed as dist

    if _SIMULATED is not None or (dist.is_initialized() and dist.get_backend() == "nccl"):
        return compute_device()
    return torch.device("cpu")


def torch_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _move(obj: Any, device: torch.device, pin: bool) -> Any:
    if isinstance(obj, torch.Tensor):
        if device.type == "cpu":
            return obj.cpu()  # no copy when it is there already
        if obj.device == device:
            return obj
        if pin and obj.device.type == "cpu" and obj.numel() * obj.element_size() >= PIN_MIN_BYTES:
            return obj.pin_memory().to(device, non_blocking=True)
        return obj.to(device, non_blocking=pin)
    if isinstance(obj, dict):
        return {k: _move(v, device, pin) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_move(v, device, pin) for v in obj)
    if is_dataclass(obj) and not isinstance(obj, type):  # e.g. megatron's PackedSeqParams (cu_seqlens)
        changes = {f.name: _move(getattr(obj, f.name), device, pin) for f in fields(obj)
                   if isinstance(getattr(obj, f.name), torch.Tensor)}
        return replace(obj, **changes) if changes else obj
    return obj


def to_device(obj: Any) -> Any:
    """Tensors (also inside dicts, lists, tuples and dataclasses) on the compute device.

    Host → GPU copies of large tensors go through pinned memory with ``non_blocking``, so
    they overlap with compute; CUDA orders them before any kernel that reads them.
    """
    device = compute_device()
    return _move(obj, device, pin=device.type == "cuda" and _SIMULATED is None)


def to_host(obj: Any) -> Any:
    """Tensors (also inside containers) back on the CPU, for bookkeeping, logs and files."""
    return _move(obj, torch.device("cpu"), pin=False)


def place_module(module: torch.nn.Module) -> torch.nn.Module:
    """Put a model's parameters and buffers on the compute device."""
    module = module.to(compute_device())
    for hook in _PLACEMENT_HOOKS:
        hook(module)
    return module


def offload_module(module: torch.nn.Module) -> torch.nn.Module:
    """Move a model to host memory and give its GPU memory back (e.g. the frozen reference)."""
    module = module.to("cpu")
    release_cached_memory()
    return module


def release_cached_memory() -> None:
    """Give the blocks PyTorch's caching allocator holds back to the driver (GPU only), so another
    allocator in this process (vLLM's, waking up) can map them."""
    if cuda_available():
        torch.cuda.empty_cache()


def peak_memory_gb(reset: bool = True) -> Optional[float]:
    """The most GPU memory PyTorch held since the last reset (GiB), then reset; None without a GPU."""
    if not cuda_available() or _SIMULATED is not None:
        return None
    peak = torch.cuda.max_memory_allocated() / 2**30
    if reset:
        torch.cuda.reset_peak_memory_stats()
    return peak


def on_accelerator(module: torch.nn.Module) -> bool:
    """Whether the model's parameters sit on a GPU (what offloading can free)."""
    return any(p.device.type == "cuda" for p in module.parameters()) and _SIMULATED is None


def simulate_device(device: Optional[torch.device], hook: Optional[Callable[[torch.nn.Module], None]] = None
                    ) -> None:
    """For the device audit only: make ``compute_device()`` answer ``device`` (None: undo)."""
    global _SIMULATED
    _SIMULATED = device
    _PLACEMENT_HOOKS.clear()
    if device is not None and hook is not None:
        _PLACEMENT_HOOKS.append(hook)
