"""The real model through the checkpoint tools as a user runs them: 🤗 → native → 🤗, verify at TP 1 and 3,
TP 2 refused in one line (issue 27 A5: it used to end in torchrun's ChildFailedError page)."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def native(smollm2, tmp_path_factory):
    out = tmp_path_factory.mktemp("smol") / "native"
    proc = run_cli("convert", "hf-to-nemo", "--hf", str(smollm2), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.parametrize("tp,tol", [(1, 1e-5), (3, 1e-4)])
def test_verify_real_model_at_tp(smollm2, native, tmp_path, tp, tol):
    report = tmp_path / "verify.json"
    proc = run_cli("convert", "verify", "--hf", str(smollm2), "--nemo", str(native), "--tp", str(tp),
                   "--tol", str(tol), "--json", str(report))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["ok"] and result["max_abs_diff"] <= tol and result["top1_agreement"] == 1.0


def test_tp2_is_refused_in_one_line(smollm2, native):
    proc = run_cli("convert", "verify", "--hf", str(smollm2), "--nemo", str(native), "--tp", "2")
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last == ("error: model.num_attention_heads (9) must be a multiple of "
                    "parallel.tensor_model_parallel_size (2)")
    assert "Traceback" not in proc.stderr and "ChildFailedError" not in proc.stderr


def test_native_back_to_hf_generates_like_the_original(smollm2, native, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "hf"
    proc = run_cli("convert", "nemo-to-hf", "--nemo", str(native), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    tok = AutoTokenizer.from_pretrained(str(out))
    assert tok.chat_template == AutoTokenizer.from_pretrained(str(smollm2)).chat_template
    text = tok.apply_chat_template([{"role": "user", "content": "What is 2+3?"}], tokenize=False,
                                   add_generation_prompt=True)
    ids = tok(text, return_tensors="pt", add_special_tokens=False).input_ids
    answers = []
    for path in (smollm2, out):
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
        gen = model.generate(ids, max_new_tokens=12, do_sample=False)
        answers.append(tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True))
    assert answers[0] == answers[1] and "5" in answers[1], answers
