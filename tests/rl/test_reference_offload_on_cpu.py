"""The frozen reference visits the GPU only inside ``reference_model`` when offloaded."""

from __future__ import annotations

import torch

from nemo_thinkrm.trainers.policy_rl import reference_model


class _Recorder(torch.nn.Linear):
    def __init__(self) -> None:
        super().__init__(2, 2)
        self.moves: list[str] = []

    def to(self, *args, **kwargs):  # record instead of moving: no GPU here
        self.moves.append(str(args[0]))
        return self


def test_offloaded_reference_moves_in_and_out(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    ref = _Recorder()
    with reference_model({"ref": ref, "ref_offloaded": True}) as model:
        assert model is ref and ref.moves == ["0"]
    assert ref.moves == ["0", "cpu"]
    try:  # an error inside still puts the weights back on the host
        with reference_model({"ref": ref, "ref_offloaded": True}):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert ref.moves[-1] == "cpu" and len(ref.moves) == 4


def test_resident_reference_is_not_moved():
    ref = _Recorder()
    with reference_model({"ref": ref, "ref_offloaded": False}) as model:
        assert model is ref
    assert ref.moves == []
