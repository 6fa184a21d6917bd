"""token_logprobs (vocab-parallel CE, TP=1) == log_softmax of 🤗's logits at the labels."""

from __future__ import annotations

import pytest
import torch
import transformers

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.parallel import ParallelConfig
from nemo_thinkrm.models.loading import load_hf_weights, model_config_for_hf_dir
from nemo_thinkrm.training.engine import build_engine_model, unwrap
from nemo_thinkrm.training.logprobs import token_logprobs

TOL = 1e-4


def _setup(hf_dir):
    cfg = model_config_for_hf_dir(hf_dir)
    chunks = build_engine_model(cfg, ParallelConfig(), wrap_ddp=False)
    load_hf_weights(unwrap(chunks[0]), cfg, hf_dir)
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, cfg.vocab_size, (3, 21), generator=g)
    hf = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    return chunks, ids[:, :-1], ids[:, 1:], hf


def _hf_logprobs(hf, inputs, labels, temperature=1.0, attention_mask=None):
    with torch.no_grad():
        logits = hf(inputs, attention_mask=attention_mask).logits.float()
    return torch.log_softmax(logits / temperature, -1).gather(-1, labels[..., None])[..., 0]


@pytest.mark.parametrize("variant", ["llama", "qwen3"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_matches_transformers(variant, temperature, tiny_hf_dirs, megatron_single):
    chunks, inputs, labels, hf = _setup(tiny_hf_dirs[variant])
    ours = token_logprobs(chunks, inputs, labels, temperature=temperature)
    ref = _hf_logprobs(hf, inputs, labels, temperature)
    assert ours.shape == labels.shape and ours.dtype == torch.float32
    assert (ours - ref).abs().max().item() <= TOL
    assert ref.std() > 0.1  # not a flat model


def test_micro_batch_size_does_not_matter_and_mode_restored(tiny_hf_dirs, megatron_single):
    chunks, inputs, labels, _ = _setup(tiny_hf_dirs["llama"])
    chunks[0].train()
    full = token_logprobs(chunks, inputs, labels, micro_batch_size=3)
    one = token_logprobs(chunks, inputs, labels, micro_batch_size=1)
    two = token_logprobs(chunks, inputs, labels, micro_batch_size=2, broadcast=True)  # 3 rows: last mb filled
    assert chunks[0].training
    assert (full - one).abs().max().item() <= 1e-5
    assert (full - two).abs().max().item() <= 1e-5


def test_left_padding_mask(tiny_hf_dirs, megatron_single):
    chunks, inputs, labels, hf = _setup(tiny_hf_dirs["qwen3"])
    mask = torch.ones_like(inputs)
    mask[0, :4] = 0
    ours = token_logprobs(chunks, inputs, labels, attention_mask=mask)
    ref = _hf_logprobs(hf, inputs[:1, 4:], labels[:1, 4:])
    assert (ours[0, 4:] - ref[0]).abs().max().item() <= TOL
    assert torch.all(ours[0, :4] == 0)
    assert (ours[1:] - token_logprobs(chunks, inputs[1:], labels[1:])).abs().max().item() <= 1e-5


def test_shape_errors(tiny_hf_dirs, megatron_single):
    chunks, inputs, labels, _ = _setup(tiny_hf_dirs["llama"])
    with pytest.raises(ConfigError):
        token_logprobs(chunks, inputs, labels[:, :-1])
    with pytest.raises(ConfigError):
        token_logprobs(chunks, inputs, labels, temperature=0.0)


def test_rl_batches_under_sequence_parallelism_divide_by_tp_and_padding_changes_no_logprob(tiny_hf_dirs,
                                                                                           megatron_single):
    """Issue 27 B7: RL batches were padded to the longest sample only, so sequence parallelism's
    reduce-scatter (the sequence split over TP ranks) asserted at TP = 8."""
    from nemo_thinkrm.config.parallel import ParallelConfig as Par
    from nemo_thinkrm.config.rl import GRPOConfig
    from nemo_thinkrm.generation.interface import GenerationOutput
    from nemo_thinkrm.trainers.policy import build_batch, sequence_multiple

    assert sequence_multiple(GRPOConfig(parallel=Par(tensor_model_parallel_size=8, sequence_parallel=True))) == 8
    assert sequence_multiple(GRPOConfig(parallel=Par(tensor_model_parallel_size=8))) == 1
    g = torch.Generator().manual_seed(0)
    samples = [GenerationOutput(f"r{k}", "", n, "stop", prompt_ids=torch.randint(1, 500, (p,), generator=g).tolist(),
                                output_ids=torch.randint(1, 500, (n,), generator=g).tolist())
               for k, (p, n) in enumerate([(5, 7), (9, 3), (4, 12)])]
    adv = torch.tensor([0.5, -1.0, 0.25])
    plain = build_batch(samples, adv, pad_id=0)
    assert plain["input_ids"].shape[1] == 15
    for multiple in (8, 7):
        padded = build_batch(samples, adv, pad_id=0, multiple=multiple)
        width = padded["input_ids"].shape[1]
        assert width % multiple == 0 and width - 15 < multiple
        for key in ("input_ids", "targets", "response_mask", "advantages"):
            assert torch.equal(padded[key][:, :15], plain[key]), key
            assert not padded["response_mask"][:, 15:].any()
        chunks, *_ = _setup(tiny_hf_dirs["llama"])
        a = token_logprobs(chunks, plain["input_ids"], plain["targets"])
        b = token_logprobs(chunks, padded["input_ids"], padded["targets"])
        assert (a - b[:, :15]).abs().max().item() <= 1e-5
