"""The RL loss takes log-probs at the temperature the rollouts were sampled at.

Samples drawn from softmax(logits / T) have that distribution's log-probs; taking them at T = 1 (as
before 2026-12-07, whatever ``generation.temperature`` said) made the PPO ratio, the KL and the logged
entropy those of another policy. Checked against log_softmax(logits / T) computed here: with the old
log-probs of the sampling policy the ratio is exactly 1 on every token."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from nemo_thinkrm.config.generation import GenerationConfig
from nemo_thinkrm.config.rl import GRPOConfig
from nemo_thinkrm.trainers.policy import pg_loss, sampling_temperature


@pytest.mark.parametrize("temperature", [0.5, 1.0, 1.3])
def test_the_loss_reads_log_probs_at_the_sampling_temperature(megatron_single, temperature):
    torch.manual_seed(0)
    vocab = 11
    logits = 3 * torch.randn(2, 5, vocab)
    targets = torch.randint(0, vocab, (2, 5))
    sampled = torch.log_softmax(logits / temperature, -1).gather(-1, targets[..., None])[..., 0]
    mask = torch.ones(2, 5)
    batch = {"targets": targets, "response_mask": mask, "advantages": torch.ones(2, 5),
             "old_logprob": sampled, "ref_logprob": sampled}
    cfg = replace(GRPOConfig(), generation=GenerationConfig(temperature=temperature))
    _, count, stats = pg_loss(cfg, vocab, batch, logits)
    assert float(count) == 10
    assert float(stats["ratio_sum"]) == pytest.approx(10.0, abs=1e-5)  # ratio 1 on every token
    assert float(stats["kl_sum"]) == pytest.approx(0.0, abs=1e-6)
    p = torch.softmax(logits / temperature, -1)
    entropy = -(p * p.log()).sum(-1).sum()
    assert float(stats["entropy_sum"]) == pytest.approx(float(entropy), rel=1e-5)


def test_greedy_rollouts_are_scored_at_temperature_one():
    assert sampling_temperature(replace(GRPOConfig(), generation=GenerationConfig(temperature=0.0))) == 1.0
