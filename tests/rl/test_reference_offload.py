"""The frozen reference visits the GPU only inside ``reference_on_device`` when offloaded."""

from __future__ import annotations

import pytest
import torch

from nemo_thinkrm.runtime.device import simulate_device
from nemo_thinkrm.trainers.policy import reference_on_device


class _Recorder(torch.nn.Linear):
    def __init__(self) -> None:
        super().__init__(2, 2)
        self.moves: list[str] = []

    def to(self, *args, **kwargs):  # record instead of moving: no GPU here
        self.moves.append(str(args[0]))
        return self


@pytest.fixture
def gpu_named():
    """compute_device() answers cuda:0 (the arithmetic stays on the CPU)."""
    simulate_device(torch.device("cuda", 0))
    yield
    simulate_device(None)


def test_offloaded_reference_moves_in_and_out(gpu_named):
    ref = _Recorder()
    with reference_on_device(ref, True) as model:
        assert model is ref and ref.moves == ["cuda:0"]
    assert ref.moves == ["cuda:0", "cpu"]
    try:  # an error inside still puts the weights back on the host
        with reference_on_device(ref, True):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert ref.moves[-1] == "cpu" and len(ref.moves) == 4


def test_resident_reference_is_not_moved():
    ref = _Recorder()
    with reference_on_device(ref, False) as model:
        assert model is ref
    assert ref.moves == []
