"""A CPU-only check that tensors cross to the GPU where they must: the device audit.

No GPU here, so a batch that never reaches the model's device goes unnoticed: every
tensor is on the CPU anyway. The audit makes that mistake visible. While it is active:

* ``compute_device()`` answers ``cuda:0`` (``runtime.device.simulate_device``), and so does
  ``torch.cuda.current_device()``, while all arithmetic stays on the CPU;
* a ``TorchFunctionMode`` keeps two weak sets of tensors: *device* tensors (made by
  ``.to(cuda)``, ``.cuda()``, a factory with a CUDA ``device=``, the models that
  ``place_module`` put on the device, and results of ops on device tensors) and *host*
  tensors (made by a factory without a CUDA device, ``.cpu()``, ``.to("cpu")``, and
  results of ops on host tensors). ``Tensor.device`` of a device tensor reads ``cuda:0``,
  so code that allocates "next to" a tensor (``device=x.device``) does the right thing;
* an op that mixes a device tensor with a host tensor of one or more dimensions fails
  with ``DeviceMixError``, naming the op and our innermost frame — what CUDA would raise
  ("Expected all tensors to be on the same device"). What CUDA allows passes: 0-dim host
  tensors as scalars, host index tensors into a device tensor, cross-device ``copy_``;
* torch.distributed collectives fail on a host tensor (the audit plays NCCL, which only
  takes CUDA tensors) — the gloo backend underneath still does the work.

Tensors the audit never saw made (autograd's gradients, megatron's internals allocated
before it started) have no side and never fail a check.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
import weakref
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch.overrides import TorchFunctionMode

from nemo_thinkrm.runtime import device as device_mod

SIMULATED = torch.device("cuda", 0)
_COLLECTIVES = ("all_reduce", "broadcast", "all_gather", "all_gather_into_tensor", "reduce_scatter_tensor",
                "reduce", "send", "recv", "isend", "irecv", "_reduce_scatter_base", "_all_gather_base")
_CONVERSIONS = {torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu, torch.Tensor.copy_,
                torch.Tensor.type_as, torch.Tensor.pin_memory}
_INDEXING = {torch.Tensor.__getitem__, torch.Tensor.__setitem__, torch.Tensor.index_select}


class _IdSet:
    """A weak set by identity (``WeakSet`` compares with ``==``, elementwise for tensors)."""

    def __init__(self) -> None:
        self._refs: dict[int, weakref.ref] = {}

    def _forget(self, key: int, ref: weakref.ref) -> None:
        if self._refs.get(key) is ref:
            del self._refs[key]

    def add(self, t: torch.Tensor) -> None:
        key = id(t)
        if t not in self:
            self._refs[key] = weakref.ref(t, lambda r, k=key: self._forget(k, r))

    def discard(self, t: torch.Tensor) -> None:
        if t in self:
            del self._refs[id(t)]

    def __contains__(self, t: object) -> bool:
        ref = self._refs.get(id(t))
        return ref is not None and ref() is t

    def __len__(self) -> int:
        return len(self._refs)


class DeviceMixError(RuntimeError):
    """An op saw host and device tensors together: it would fail on a GPU."""


def _is_cuda(device: Any) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cuda"
    if isinstance(device, str):
        return device.startswith("cuda")
    return isinstance(device, int) and not isinstance(device, bool)


def _is_cpu(device: Any) -> bool:
    """Only the string: a ``torch.device("cpu")`` may come from ``x.device`` of a "device" tensor
    (modes do not see ``Tensor.device``, which stays the real CPU), so it says nothing."""
    return isinstance(device, str) and device == "cpu"


def _is_cpu_object(device: Any) -> bool:
    return isinstance(device, torch.device) and device.type == "cpu"


_FACTORIES = {"tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "arange", "range", "linspace",
              "logspace", "eye", "rand", "randn", "randint", "randperm", "tril_indices", "triu_indices",
              "empty_strided"}


def _tensors(obj: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)) and depth < 4:
        for item in obj:
            yield from _tensors(item, depth + 1)
    elif isinstance(obj, dict) and depth < 4:
        for item in obj.values():
            yield from _tensors(item, depth + 1)


def _our_frame() -> str:
    for frame in reversed(traceback.extract_stack()[:-3]):
        if "nemo_thinkrm" in frame.filename and "device.py" not in frame.filename:
            return f"{frame.filename.split('nemo_thinkrm')[-1].lstrip('/')}:{frame.lineno} ({frame.name})"
    return "outside nemo_thinkrm"


class DeviceAudit(TorchFunctionMode):
    """``with DeviceAudit():`` — see the module docstring. ``errors`` lists what was caught."""

    def __init__(self) -> None:
        super().__init__()
        self.device = _IdSet()
        self.host = _IdSet()
        self.ops_checked = 0
        self._undo: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ marking
    def side(self, t: torch.Tensor) -> str:
        if t in self.device:
            return "device"
        if t in self.host:
            return "host"
        return "unknown"

    def _mark(self, result: Any, side: str) -> None:
        target, other = (self.device, self.host) if side == "device" else (self.host, self.device)
        for t in _tensors(result):
            other.discard(t)
            target.add(t)

    def place(self, module: torch.nn.Module) -> None:
        for t in list(module.parameters()) + list(module.buffers()):
            self._mark(t, "device")

    # ------------------------------------------------------------------ the mode
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        to_device = to_host = derived = False
        if "device" in kwargs:
            if _is_cuda(kwargs["device"]):
                kwargs["device"], to_device = "cpu", True
            elif _is_cpu(kwargs["device"]):
                to_host = True
            elif _is_cpu_object(kwargs["device"]):
                derived = True
        if func is torch.Tensor.to:
            new_args = []
            for a in args[1:]:
                if not isinstance(a, torch.Tensor) and _is_cuda(a):
                    a, to_device = "cpu", True
                elif not isinstance(a, torch.Tensor) and _is_cpu(a):
                    to_host = True
                elif _is_cpu_object(a):
                    derived = True
                new_args.append(a)
            args = (args[0], *new_args)
        elif func is torch.Tensor.cuda:
            return self._converted(args[0], "device")
        elif func is torch.Tensor.cpu:
            return self._converted(args[0], "host")
        inputs = [t for t in _tensors((args, kwargs))]
        if getattr(func, "__name__", "") == "__set__":  # param.data = t: a rebinding, not an op
            return func(*args, **kwargs)
        if func not in _CONVERSIONS:
            self._check(func, inputs)
        result = func(*args, **kwargs)
        if func is torch.Tensor.to and (to_device or to_host or derived):
            if result is args[0]:  # CPU→"cuda" is a no-op here; a real move makes a new tensor
                result = args[0].view_as(args[0]) if self.side(args[0]) != "unknown" else args[0]
            if to_device or to_host:
                self._mark(result, "device" if to_device else "host")
            return result  # .to(x.device): the side of x is not known here, so none
        if not isinstance(result, torch.Tensor) and not isinstance(result, (list, tuple)):
            return result
        if to_device:
            self._mark(result, "device")
        elif func in (torch.Tensor.copy_,) or func in _INDEXING and func is not torch.Tensor.__getitem__:
            pass  # in place: the destination keeps its side
        elif func is torch.Tensor.__getitem__:
            self._mark(result, self.side(args[0])) if self.side(args[0]) != "unknown" else None
        else:
            sides = {self.side(t) for t in inputs if t.dim() > 0 or self.side(t) == "device"}
            if "device" in sides:
                self._mark(result, "device")
            elif "host" in sides or to_host or (not inputs and not derived
                                                and getattr(func, "__name__", "") in _FACTORIES):
                self._mark(result, "host")
        return result

    def _converted(self, t: torch.Tensor, side: str) -> torch.Tensor:
        out = t.view_as(t)
        self._mark(out, side)
        return out

    def _check(self, func, inputs: list[torch.Tensor]) -> None:
        self.ops_checked += 1
        if len(inputs) < 2:
            return
        if func in _INDEXING:  # host indices into a device tensor are fine; the values must match
            if func is torch.Tensor.__getitem__:
                return
            inputs = [inputs[0]] + [t for t in inputs[1:] if t.dtype not in (torch.long, torch.int, torch.bool)]
        device = [t for t in inputs if t in self.device]
        host = [t for t in inputs if t in self.host and t.dim() > 0]
        if device and host:
            name = getattr(func, "__qualname__", getattr(func, "__name__", str(func)))
            raise DeviceMixError(f"{name} got device tensors {[tuple(t.shape) for t in device][:3]} and host "
                                 f"tensors {[tuple(t.shape) for t in host][:3]} at {_our_frame()}: on a GPU "
                                 f"this fails (move the batch with runtime.device.to_device)")

    # ------------------------------------------------------------------ collectives
    def _wrap_collective(self, name: str) -> None:
        original = getattr(dist, name, None)
        if original is None:
            return
        audit = self

        def checked(*args, **kwargs):
            for t in _tensors((args, kwargs)):
                if t in audit.host:
                    raise DeviceMixError(f"torch.distributed.{name} got a host tensor {tuple(t.shape)} at "
                                         f"{_our_frame()}: NCCL takes CUDA tensors only "
                                         f"(make it on runtime.device.collective_device())")
            return original(*args, **kwargs)

        setattr(dist, name, checked)
        self._undo.append(lambda: setattr(dist, name, original))

    def __enter__(self):
        from nemo_thinkrm.runtime.cpu_compat import apply_cpu_compat

        apply_cpu_compat()  # its CUDA→CPU mode must sit below this one, which has to see device="cuda" first
        cuda = torch.cuda
        saved_current = cuda.current_device
        cuda.current_device = lambda: 0
        self._undo.append(lambda: setattr(cuda, "current_device", saved_current))
        for name in _COLLECTIVES:
            self._wrap_collective(name)
        device_mod.simulate_device(SIMULATED, hook=self.place)
        self._undo.append(lambda: device_mod.simulate_device(None))
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            for undo in reversed(self._undo):
                undo()
            self._undo.clear()


@contextlib.contextmanager
def device_audit() -> Iterator[DeviceAudit]:
    if "torch" not in sys.modules:  # pragma: no cover
        raise RuntimeError("import torch first")
    audit = DeviceAudit()
    with audit:
        yield audit


def main(argv: list[str]) -> int:
    """``python -m tests.device_audit <stage> [overrides]``: one ``thinkrm`` stage under the audit."""
    from nemo_thinkrm.cli import main as thinkrm

    with device_audit() as audit:
        code = thinkrm(argv)
    print(f"device audit: {audit.ops_checked} ops checked, exit code {code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
