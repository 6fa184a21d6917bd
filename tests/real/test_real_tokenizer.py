"""Issue 27 A1: a start checkpoint's own tokenizer is the truth (real SmolLM2 checkpoint).

Before: ``thinkrm sft --config-name tiny_sft model.hf_path=<SmolLM2>`` trained the real model on
the recipe's 512-token tiny BPE ids (first loss 6.60) without a word. With the checkpoint's own
tokenizer (``model.tokenizer.name=null``) the first loss is low and ``config.yaml`` records it:
``test_real_pipeline.py::test_sft_on_real_lengths_in_the_models_own_template``.
"""

from __future__ import annotations


import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.real

SHORT = ["train_iters=1", "global_batch_size=2", "micro_batch_size=2", "data.val_fraction=0",
         "checkpoint.save_interval=0"]


def test_recipe_tokenizer_that_differs_from_the_checkpoints_is_refused(smollm2, tmp_path):
    proc = run_cli("sft", "--config-name", "tiny_sft", f"run_dir={tmp_path / 'sft'}", f"model.hf_path={smollm2}",
                   *SHORT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: model.tokenizer.name='tiny_bpe' is not the tokenizer stored with")
    assert str(smollm2) in last and "vocabulary 512 vs 49152 entries" in last and "chat template differs" in last
    assert not (tmp_path / "sft" / "metrics.jsonl").exists()


def test_the_same_tokenizer_named_another_way_is_accepted(smollm2, tmp_path):
    """A tokenizer is compared by what it does, not by its path: a copy of the checkpoint's passes,
    and override_checkpoint lets a different one through on purpose."""
    import shutil

    from nemo_thinkrm.checkpoint.start import tokenizer_for
    from nemo_thinkrm.config.errors import ConfigError
    from nemo_thinkrm.config.model import TokenizerConfig

    copy = tmp_path / "tok"
    copy.mkdir()
    for f in smollm2.glob("*"):
        if f.name.startswith(("tokenizer", "chat_template", "special_tokens")):
            shutil.copy(f, copy / f.name)
    tok, cfg = tokenizer_for(TokenizerConfig(name=str(copy)), smollm2)
    assert cfg.name == str(copy) and len(tok) == 49152
    with pytest.raises(ConfigError, match="is not the tokenizer stored with"):
        tokenizer_for(TokenizerConfig(name="qwen2_5"), smollm2)
    tok, cfg = tokenizer_for(TokenizerConfig(name="qwen2_5", override_checkpoint=True), smollm2)
    assert cfg.name == "qwen2_5" and len(tok) > 150_000
