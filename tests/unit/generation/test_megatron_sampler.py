"""MegatronSampler (sampling from the megatron model, TP=1), KV-cached and full recompute:
greedy equals 🤗 generate for prompts of different lengths in one batch, the two loops give the
same tokens (greedy and seeded), seeds reproduce, EOS and stop strings end a row correctly.
TP=2: tests/rl/test_sampler_tp2.py."""

from __future__ import annotations

import pytest
import torch
import transformers

from nemo_thinkrm.config.generation import GenerationConfig
from nemo_thinkrm.config.parallel import ParallelConfig
from nemo_thinkrm.generation.interface import GenerationRequest
from nemo_thinkrm.generation.megatron_sampler import MegatronSampler
from nemo_thinkrm.models.loading import load_hf_weights, model_config_for_hf_dir
from nemo_thinkrm.models.tokenizer import tiny_bpe_dir
from nemo_thinkrm.training.engine import build_engine_model, unwrap

PROMPTS = ["What is 3 + 4? The answer is", "the question answer response", "[The Start of Response A]\n12 - 5",
           "which is better"]
NEW = 16


@pytest.fixture(scope="module")
def tok():
    return transformers.AutoTokenizer.from_pretrained(tiny_bpe_dir(512))


@pytest.fixture(scope="module")
def chunks(tiny_hf_dirs, megatron_single):
    hf_dir = tiny_hf_dirs["qwen3"]
    cfg = model_config_for_hf_dir(hf_dir)
    ch = build_engine_model(cfg, ParallelConfig(), wrap_ddp=False)
    load_hf_weights(unwrap(ch[0]), cfg, hf_dir)
    return ch


def _sampler(chunks, tok, eos=(), stop=None, **kw):
    cfg = GenerationConfig(backend="hf", temperature=kw.pop("temperature", 0.0),
                           max_new_tokens=kw.pop("max_new_tokens", NEW), batch_size=kw.pop("batch_size", 8), **kw)
    return MegatronSampler(chunks, tok, cfg, list(eos), stop_strings=stop)


def _reqs(prompts, seed=0):
    return [GenerationRequest(id=f"r{i}", prompt=p, seed=seed) for i, p in enumerate(prompts)]


@pytest.mark.parametrize("kv_cache", [True, False])
def test_greedy_equals_transformers(chunks, tok, tiny_hf_dirs, kv_cache):
    hf = transformers.AutoModelForCausalLM.from_pretrained(tiny_hf_dirs["qwen3"], dtype=torch.float32).eval()
    chunks[0].train()
    seqs = _sampler(chunks, tok, kv_cache=kv_cache).generate(_reqs(PROMPTS))
    assert chunks[0].training  # mode restored
    for p, s in zip(PROMPTS, seqs):
        ids = torch.tensor([tok(p, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            ref = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW, do_sample=False,
                              eos_token_id=None, pad_token_id=0)[0, ids.shape[1]:].tolist()
        assert s.output_ids == ref
        assert s.finish_reason == "length" and len(s.output_ids) == NEW
        assert s.prompt_ids == ids[0].tolist()


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_kv_cache_gives_the_full_recompute_tokens(chunks, tok, temperature):
    """Mixed prompt lengths in one batch (forced prompt tokens in the lock-step loop), rows ending
    at different times (EOS and a stop string drop rows from the cache mid-batch)."""
    prompts = PROMPTS + ["a", "the question answer response " * 6]
    full = _sampler(chunks, tok, temperature=temperature, kv_cache=False, max_new_tokens=40,
                    top_p=0.95).generate(_reqs(prompts, 3))
    eos = [full[0].output_ids[7]]
    stop = [full[1].text[10:13]] if full[1].text[10:13].strip() else None
    kw = dict(temperature=temperature, eos=eos, stop=stop, max_new_tokens=40, top_p=0.95)
    ref = _sampler(chunks, tok, kv_cache=False, **kw).generate(_reqs(prompts, 3))
    got = _sampler(chunks, tok, kv_cache=True, **kw).generate(_reqs(prompts, 3))
    assert [o.output_ids for o in got] == [o.output_ids for o in ref]
    assert [(o.text, o.finish_reason) for o in got] == [(o.text, o.finish_reason) for o in ref]
    assert ref[0].finish_reason == "stop" and len(ref[0].output_ids) < 40  # the EOS really ended a row early
    assert {o.finish_reason for o in ref} == {"stop", "length"}


def test_batch_size_and_order(chunks, tok):
    reqs = _reqs(PROMPTS * 2)
    big = _sampler(chunks, tok, temperature=1.0).generate(reqs)
    small = _sampler(chunks, tok, temperature=1.0, batch_size=3).generate(reqs)
    assert [o.id for o in big] == [r.id for r in reqs] == [o.id for o in small]
    assert [o.text for o in big] == [o.text for o in small]  # independent of batch composition
    assert [o.text for o in big[:4]] == [o.text for o in big[4:]]  # same (prompt, seed) → same text


def test_seeds(chunks, tok):
    s = _sampler(chunks, tok, temperature=1.0, top_p=0.9)
    a, b, c = (s.generate(_reqs(PROMPTS, seed)) for seed in (1, 1, 2))
    assert [o.text for o in a] == [o.text for o in b]
    assert sum(x.text != y.text for x, y in zip(a, c)) >= 3
    assert all(o.output_tokens == NEW and o.finish_reason == "length" for o in a)


def test_eos_and_stop_string(chunks, tok):
    full = _sampler(chunks, tok).generate(_reqs(PROMPTS[:1]))[0]
    eos_id = full.output_ids[5]
    first = full.output_ids.index(eos_id)
    out = _sampler(chunks, tok, eos=[eos_id]).generate(_reqs(PROMPTS[:1]))[0]
    assert out.finish_reason == "stop" and out.output_ids == full.output_ids[:first]

    stop = next(full.text[k:k + 3] for k in range(4, len(full.text)) if full.text[k:k + 3].strip())
    end = full.text.find(stop) + len(stop)
    both = _sampler(chunks, tok, stop=[stop, "never-appears"]).generate(_reqs(PROMPTS[:1] + ["which is"]))
    assert both[0].finish_reason == "stop" and both[0].text == full.text[:end]
    assert both[0].text.endswith(stop) and both[0].output_tokens < NEW
    assert len(both) == 2 and both[1].error is None


def test_too_long_prompt_gets_error_not_dropped(chunks, tok):
    s = _sampler(chunks, tok)
    long_prompt = "the " * (s.max_positions + 5)
    outs = s.generate(_reqs([long_prompt, PROMPTS[0]]))
    assert outs[0].error and outs[0].output_tokens == 0
    assert outs[1].error is None and outs[1].output_tokens == NEW
