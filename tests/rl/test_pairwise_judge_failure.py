"""Pairwise RLHF stops with one line when its judges do not answer, instead of training on
all-failed verdicts; over-long prompts are left out with a warning; CPU servers refuse judges whose
head size vLLM's CPU kernels lack."""

from __future__ import annotations

import json

import pytest

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.generation.serve_judge import check_cpu_servable
from nemo_thinkrm.models.tokenizer import tiny_bpe_dir
from tests.helpers import free_port, run_cli


def test_unreachable_judge_stops_the_run(tiny_hf_dirs, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"What is {i} + 1?"}) + "\n" for i in range(4)))
    dead = f"http://127.0.0.1:{free_port()}"
    proc = run_cli("pairwise-rlhf", "--config-name", "tiny_pairwise_rlhf", f"run_dir={tmp_path / 'run'}",
                   f"model.hf_path={tiny_hf_dirs['llama']}", f"prompt_path={prompts}", f"judge.endpoints={dead}",
                   f"judge.model={tiny_bpe_dir(512)}", "judge.max_retries=0", "train_iters=1")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "judge requests failed" in proc.stderr and "Traceback" not in proc.stderr


def test_judge_without_tokenizer_is_a_one_line_error(tiny_hf_dirs, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "What is 1 + 1?"}) + "\n")
    proc = run_cli("pairwise-rlhf", "--config-name", "tiny_pairwise_rlhf", f"run_dir={tmp_path / 'run'}",
                   f"model.hf_path={tiny_hf_dirs['llama']}", f"prompt_path={prompts}", "judge.endpoints=http://x:1",
                   f"judge.model={tiny_hf_dirs['llama']}", "prompts_per_step=1", "global_batch_size=4")
    assert proc.returncode == 2 and "holds no tokenizer" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("config, ok", [({"hidden_size": 64, "num_attention_heads": 4}, False),
                                        ({"hidden_size": 64, "num_attention_heads": 2}, True),
                                        ({"hidden_size": 64, "num_attention_heads": 4, "head_dim": 32}, True)])
def test_cpu_servable_head_sizes(tmp_path, config, ok):
    (tmp_path / "config.json").write_text(json.dumps(config))
    if ok:
        check_cpu_servable(str(tmp_path))
    else:
        with pytest.raises(ConfigError, match="head_dim 16"):
            check_cpu_servable(str(tmp_path))


def test_prompts_longer_than_max_prompt_tokens_are_left_out(tiny_hf_dirs, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"What is {i} + 1?"}) + "\n" for i in range(4)))
    proc = run_cli("pairwise-rlhf", "--config-name", "tiny_pairwise_rlhf", f"run_dir={tmp_path / 'run'}",
                   f"model.hf_path={tiny_hf_dirs['llama']}", f"prompt_path={prompts}", "judge.endpoints=http://x:1",
                   f"judge.model={tiny_bpe_dir(512)}", "max_prompt_tokens=5")
    assert proc.returncode == 2, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "4 prompts longer than max_prompt_tokens=5 are not used" in out
    assert "0 usable prompts < prompts_per_step=2" in proc.stderr and "Traceback" not in proc.stderr
