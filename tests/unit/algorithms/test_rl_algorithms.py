"""RL algorithm math on tiny hand-built tensors: advantages, KL, clipped PG loss, rewards, registry.

Every expected number is worked out by hand in the comment next to it.
"""

import math

import pytest
import torch

from nemo_thinkrm.algorithms.advantages import (
    broadcast_to_tokens,
    group_pairs,
    judged_preferences,
    grpo_advantages,
    pairwise_advantages,
    pairwise_scores,
    preference_matrix,
)
from nemo_thinkrm.algorithms.pg_loss import clipped_pg_loss
from nemo_thinkrm.algorithms.rewards import combine
from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.registry import ADVANTAGES, BATCH_FILTERS, KL_ESTIMATORS, REWARDS
from nemo_thinkrm.genrm.verdict import INVALID, Verdict, parse_verdict

A = Verdict("A", None, True)
B = Verdict("B", None, True)
E = math.e


def approx(t, expected, tol=1e-5):
    return torch.allclose(torch.as_tensor(t, dtype=torch.float64),
                          torch.as_tensor(expected, dtype=torch.float64), atol=tol, rtol=0)


# --------------------------------------------------------------------------- registry


def test_builtin_registries_list_their_names():
    assert sorted(REWARDS.names()) == ["binary", "consistent", "format_bonus", "length_penalty", "multiclass",
                                      "overlong_penalty"]
    assert BATCH_FILTERS.names() == ["drop_uniform_groups", "mask_truncated", "dynamic_sampling"]
    assert KL_ESTIMATORS.names() == ["k1", "k2", "k3"]
    assert ADVANTAGES.names() == ["grpo", "pairwise"]
    with pytest.raises(ConfigError, match="k1"):
        KL_ESTIMATORS.get("k4")


# --------------------------------------------------------------------------- GRPO


def test_grpo_unbiased_std_uniform_groups_and_no_std():
    rewards = torch.tensor([[0.0, 0.0, 2.0, 2.0],
                            [0.1, 0.1, 0.1, 0.1],
                            [5.0, 5.0, 5.0, 5.0]])
    adv = ADVANTAGES.get("grpo")(rewards)
    # row 0: mean 1, deviations ±1, Σdev² = 4, unbiased var = 4/3, std = 2/√3 = 1.154701
    #        A = ±1 / (1.154701 + 1e-6) = ±0.866025 (a biased std of 1 would give ±1)
    s = math.sqrt(3) / 2
    assert approx(adv[0], [-s, -s, s, s])
    # rows 1, 2: all equal → exactly 0 (0.1 round-off in the mean must not leak through 1/eps)
    assert torch.equal(adv[1:], torch.zeros(2, 4))
    # scale_by_std=False: r − mean → row 0: [−1, −1, 1, 1], uniform rows 0
    plain = grpo_advantages(rewards, scale_by_std=False)
    assert approx(plain[0], [-1, -1, 1, 1]) and torch.equal(plain[1:], torch.zeros(2, 4))
    # G = 1 has no unbiased std
    with pytest.raises(ConfigError, match="at least 2"):
        grpo_advantages(torch.tensor([[1.0]]))


def test_grpo_simple_group():
    # [1, 2, 3]: mean 2, Σdev² = 1 + 0 + 1 = 2, var = 2/2 = 1, std = 1 → A = [−1, 0, 1]/(1+1e-6)
    assert approx(grpo_advantages(torch.tensor([[1.0, 2.0, 3.0]])), [[-1, 0, 1]])


def test_groups_with_signal_filters_and_broadcast():
    from nemo_thinkrm.algorithms.filters import has_signal

    rewards = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]])
    assert has_signal(rewards).tolist() == [True, False, True]
    d = torch.zeros(3, 2, 2)
    d[2, 0, 1], d[2, 1, 0] = 0.5, -0.5
    assert has_signal(preferences=d).tolist() == [False, False, True]
    drop = BATCH_FILTERS.get("drop_uniform_groups")
    adv = torch.tensor([[1.0, -1.0], [0.5, 0.5], [2.0, 0.0]])
    kept, metrics = drop(adv, rewards=None, preferences=d, truncated=torch.zeros(3, 2, dtype=torch.bool))
    assert kept.tolist() == [[0, 0], [0, 0], [2, 0]] and metrics["dropped_groups"] == pytest.approx(2 / 3)
    mask = torch.tensor([[0, 1, 1], [1, 1, 0]])
    # each row's scalar on its response tokens, 0 elsewhere
    assert broadcast_to_tokens(torch.tensor([2.0, -1.0]), mask).tolist() == [[0, 2, 2], [-1, -1, 0]]


# --------------------------------------------------------------------------- KL


def test_kl_estimators_hand_values():
    lp = torch.tensor([-1.0, -2.0, -0.5])
    ref = torch.tensor([-1.0, -1.0, -1.5])
    # k1 = lp − ref = [0, −1, 1]
    assert approx(KL_ESTIMATORS.get("k1")(lp, ref), [0, -1, 1])
    # k2 = ½(lp − ref)² = [0, 0.5, 0.5]
    assert approx(KL_ESTIMATORS.get("k2")(lp, ref), [0, 0.5, 0.5])
    # k3: r = ref − lp = [0, 1, −1]; e^r − r − 1 = [0, e − 2, e^−1] = [0, 0.718282, 0.367879]
    k3 = KL_ESTIMATORS.get("k3")(lp, ref)
    assert approx(k3, [0, E - 2, 1 / E]) and k3[0] == 0 and (k3 >= 0).all()


def test_k3_clamps_log_ratio():
    lp = torch.tensor([0.0, -100.0], requires_grad=True)
    ref = torch.tensor([-100.0, 0.0])
    k3 = KL_ESTIMATORS.get("k3")(lp, ref)
    # r = −100 → clamped −20: e^−20 + 20 − 1 ≈ 19.0;  r = 100 → clamped 20: e^20 − 21 (finite)
    assert approx(k3[0], 19.0 + math.exp(-20), 1e-4)
    assert approx(k3[1] / (math.exp(20) - 21), 1.0, 1e-5)
    k3.sum().backward()
    assert torch.isfinite(lp.grad).all()


# --------------------------------------------------------------------------- clipped PG loss


def _batch(ratios, adv, mask=None, old=None):
    lp = torch.log(torch.tensor([ratios], dtype=torch.float32))
    batch = {"old_logprob": torch.zeros_like(lp) if old is None else torch.tensor([old]),
             "advantages": torch.tensor([adv], dtype=torch.float32),
             "response_mask": torch.ones_like(lp, dtype=torch.int) if mask is None else torch.tensor([mask])}
    return batch, lp.requires_grad_(True)


def test_clip_inside_and_outside_range_both_signs():
    # ε = 0.2 → clip(ρ) ∈ [0.8, 1.2]; pg = max(−ρA, −clip(ρ)A)
    #  tok  A   ρ    −ρA   −clip·A   pg    clipped branch taken?
    #  1   +1  1.1  −1.1   −1.1     −1.1   no (inside)
    #  2   +1  1.5  −1.5   −1.2     −1.2   yes
    #  3   −1  0.9   0.9    0.9      0.9   no (inside)
    #  4   −1  1.5   1.5    1.2      1.5   no (pessimistic: unclipped is larger)
    #  5   −1  0.5   0.5    0.8      0.8   yes
    #  6   +1  0.5  −0.5   −0.8     −0.5   no
    # Σ = −1.1 − 1.2 + 0.9 + 1.5 + 0.8 − 0.5 = 0.4 over 6 tokens; clipfrac_sum = 2
    batch, lp = _batch([1.1, 1.5, 0.9, 1.5, 0.5, 0.5], [1, 1, -1, -1, -1, 1])
    loss, count, stats = clipped_pg_loss(batch, lp)
    assert approx(loss, 0.4) and count.item() == 6 and count.dtype == torch.int32
    assert stats["clipfrac_sum"].item() == 2 and stats["tokens"].item() == 6
    assert approx(stats["pg_loss_sum"], 0.4) and approx(stats["ratio_sum"], 6.0)
    assert "kl_sum" not in stats and "dual_clipfrac_sum" not in stats
    # d(−ρA)/d logprob = −ρA on unclipped tokens; clipped tokens get no gradient
    loss.backward()
    assert approx(lp.grad, [[-1.1, 0.0, 0.9, 1.5, 0.0, -0.5]])


def test_clip_eps_high_is_asymmetric():
    # ε_low 0.2, ε_high 0.28: A=+1, ρ=1.25 now inside → −1.25; ρ=1.5 → −1.28. Σ = −2.53
    batch, lp = _batch([1.25, 1.5], [1, 1])
    loss, _, stats = clipped_pg_loss(batch, lp, clip_eps_high=0.28)
    assert approx(loss, -2.53) and stats["clipfrac_sum"].item() == 1


def test_masked_token_contributes_nothing():
    # 3rd token: mask 0, NaN old log-prob, huge advantage → no loss, no count, zero gradient
    batch, lp = _batch([1.1, 0.9, 1e3], [1.0, -1.0, 100.0], mask=[1, 1, 0], old=[0.0, 0.0, float("nan")])
    loss, count, stats = clipped_pg_loss(batch, lp)
    # −1.1 + 0.9 = −0.2 over 2 tokens
    assert approx(loss, -0.2) and count.item() == 2 and stats["tokens"].item() == 2
    loss.backward()
    assert torch.isfinite(lp.grad).all() and lp.grad[0, 2] == 0


def test_dual_clip_bounds_negative_advantage_loss():
    # c = 3:
    #  A=−1, ρ=5: standard pg = max(5, 1.2) = 5 → min(5, −c·A = 3) = 3   (dual active)
    #  A=+1, ρ=5: pg = max(−5, −1.2) = −1.2, A > 0 → untouched
    #  A=−1, ρ=2: pg = max(2, 1.2) = 2 < 3 → untouched
    # Σ = 3 − 1.2 + 2 = 3.8 (without dual clip: 5 − 1.2 + 2 = 5.8)
    batch, lp = _batch([5.0, 5.0, 2.0], [-1, 1, -1])
    loss, _, stats = clipped_pg_loss(batch, lp, dual_clip_c=3.0)
    assert approx(loss, 3.8) and stats["dual_clipfrac_sum"].item() == 1
    assert approx(clipped_pg_loss(batch, lp)[0], 5.8)
    loss.backward()
    # the bounded token is constant in ρ → zero gradient there
    assert lp.grad[0, 0] == 0
    with pytest.raises(ConfigError, match="dual_clip_c"):
        clipped_pg_loss(batch, lp, dual_clip_c=1.0)


def test_token_mean_vs_seq_mean_counts_and_sums():
    # ρ = 1 everywhere, so pg = −A per token.
    # seq 0: mask [1,1,1], pg [1,2,3]; seq 1: mask [1,0,0], pg [6]; seq 2: no response tokens
    lp = torch.zeros(3, 3)
    batch = {"old_logprob": torch.zeros(3, 3),
             "advantages": -torch.tensor([[1.0, 2.0, 3.0], [6.0, 9.0, 9.0], [9.0, 9.0, 9.0]]),
             "response_mask": torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]])}
    # token_mean: Σ = 1 + 2 + 3 + 6 = 12 over 4 tokens (mean 3)
    loss, count, stats = clipped_pg_loss(batch, lp, aggregation="token_mean")
    assert approx(loss, 12) and count.item() == 4
    # seq_mean_token_mean: seq means 2 and 6 → Σ = 8 over 2 sequences (mean 4); empty seq 2 not counted
    loss, count, stats = clipped_pg_loss(batch, lp, aggregation="seq_mean_token_mean")
    assert approx(loss, 8) and count.item() == 2
    assert stats["seqs"].item() == 2 and stats["tokens"].item() == 4 and approx(stats["pg_loss_sum"], 12)
    with pytest.raises(ConfigError, match="aggregation"):
        clipped_pg_loss(batch, lp, aggregation="seq_sum")


def test_kl_loss_term_and_missing_ref():
    # ρ = 1, A = 0 → pg = 0. lp = [−1, −2], ref = [−1, −1]
    lp = torch.tensor([[-1.0, -2.0]])
    batch = {"old_logprob": lp.clone(), "advantages": torch.zeros(1, 2),
             "response_mask": torch.ones(1, 2), "ref_logprob": torch.tensor([[-1.0, -1.0]])}
    # k3 = [0, e − 2 = 0.718282] → loss = 0.1 · 0.718282 = 0.0718282
    loss, _, stats = clipped_pg_loss(batch, lp, kl_coef=0.1)
    assert approx(loss, 0.1 * (E - 2)) and approx(stats["kl_sum"], E - 2)
    # k1 = lp − ref = [0, −1] → loss = −0.1
    assert approx(clipped_pg_loss(batch, lp, kl_coef=0.1, kl_estimator="k1")[0], -0.1)
    del batch["ref_logprob"]
    with pytest.raises(ConfigError, match="ref_logprob"):
        clipped_pg_loss(batch, lp, kl_coef=1e-4)
    # kl_coef = 0 needs no reference, but the estimator name is still checked
    assert clipped_pg_loss(batch, lp)[0].item() == 0
    with pytest.raises(ConfigError, match="KL estimator"):
        clipped_pg_loss(batch, lp, kl_estimator="k9")


# --------------------------------------------------------------------------- pairwise (Think-RM)


def test_pairwise_all_ties_give_zero():
    adv = pairwise_advantages(torch.zeros(2, 3, 3))
    # numerator 0, denominator sqrt(0 + eps) → exactly 0, no NaN
    assert torch.equal(adv, torch.zeros(2, 3))
    assert torch.equal(pairwise_advantages(torch.zeros(1, 3, 3), eps=0.0), torch.zeros(1, 3))


def test_pairwise_dominant_response_binary():
    pairs = group_pairs(3)  # [(0,1), (0,2), (1,2)] — i shown as A, j as B
    assert pairs == [(0, 1), (0, 2), (1, 2)]
    # response 0 wins both its pairs (A); in (1,2) the judge picks B = response 2
    d = preference_matrix(pairwise_scores([A, A, B], "binary").unsqueeze(0), pairs, 3)
    assert d[0].tolist() == [[0, 1, 1], [-1, 0, -1], [-1, 1, 0]]
    adv = pairwise_advantages(d)[0]
    # row sums [2, −2, 0]/3; Σ_{j≠k} d² = 6 → 6/(2·3·2) = 0.5 → √(0.5 + 1e-6) = 0.707108
    # A = [0.942808, −0.942808, 0]
    assert approx(adv, [2 / 3 / math.sqrt(0.5), -2 / 3 / math.sqrt(0.5), 0])
    assert adv.argmax().item() == 0 and abs(adv.sum().item()) < 1e-6


def test_pairwise_hand_computed_multiclass_from_judge_text():
    texts = ["<think>A is far better.</think><answer>-3</answer>",   # pair (0,1): s=−3 → d01 = 3
             "<think>A slightly.</think><answer>-1</answer>",        # pair (0,2): s=−1 → d02 = 1
             "<think>B is better.</think><answer>2</answer>"]        # pair (1,2): s=+2 → d12 = −2
    scores = pairwise_scores([parse_verdict(t, "multiclass") for t in texts], "multiclass")
    assert scores.tolist() == [3, 1, -2]
    d = preference_matrix(scores.unsqueeze(0), group_pairs(3), 3)
    assert d[0].tolist() == [[0, 3, 1], [-3, 0, -2], [-1, 2, 0]]
    # numerators (1/G)Σ_j d_ij = [4, −5, 1]/3
    # Σ_{j<k} d² = 9 + 1 + 4 = 14 → 14/(G(G−1)) = 14/6 = 7/3 → √(7/3 + 1e-6) = 1.527525
    # A = [0.872872, −1.091089, 0.218218], Σ = 0
    root = math.sqrt(7 / 3 + 1e-6)
    adv = pairwise_advantages(d)[0]
    assert approx(adv, [4 / 3 / root, -5 / 3 / root, 1 / 3 / root])
    assert approx(adv, [0.872872, -1.091089, 0.218218])


def test_a_position_biased_tie_judged_in_both_orders_is_exactly_zero_with_length_normalisation():
    """Issue 30's investigation: the quickstart's judge answers "B" on 84 % of pairs whose responses are
    equally right. Both orders judged, each verdict divided by its own length left (1/L1 − 1/L2)/2 per tie,
    which the pairwise advantage scales to unit size in a group of ties: pure noise."""
    pairs = group_pairs(2, both_orders=True)              # [(0, 1), (1, 0)]
    biased = [B, B]                                       # "B" whichever response is shown second
    d = judged_preferences(biased, "binary", pairs, 2, [40, 56], length_normalize=True)
    assert torch.equal(d, torch.zeros(1, 2, 2)) and torch.equal(pairwise_advantages(d), torch.zeros(1, 2))
    # per-verdict lengths (the old way): d01 = (−1/40 + 1/56)/2 = −0.0035714; A_0 = (d01/2) / √(2·d01²/4 + 1e-6)
    # = −0.0017857 / 0.0027162 = −0.6574: a tie given two-thirds of a unit advantage
    old = preference_matrix(pairwise_scores(biased, "binary", [40, 56], length_normalize=True).view(1, 2), pairs, 2)
    assert approx(old[0, 0, 1], -0.0035714) and approx(pairwise_advantages(old), [[-0.6574, 0.6574]], tol=1e-4)
    # a consistent judge (0 wins in both orders): d01 = ((1 − (−1)) / 2) / mean(40, 56) = 1/48
    d = judged_preferences([A, B], "binary", pairs, 2, [40, 56], length_normalize=True)
    assert approx(d[0, 0, 1], 1 / 48) and approx(d[0, 1, 0], -1 / 48)
    # one order per pair: Think-RM's ±1/length unchanged; G = 3 → 3 pairs
    d = judged_preferences([A, INVALID, B], "binary", group_pairs(3), 3, [100, 7, 50], length_normalize=True)
    assert approx(d[0, 0, 1], 0.01) and d[0, 0, 2] == 0 and approx(d[0, 1, 2], -0.02)
    with pytest.raises(ConfigError, match="whole number of groups"):
        judged_preferences([A], "binary", pairs, 2)


def test_pairwise_invalid_and_length_normalised_scores():
    # invalid → 0 (a tie); binary A → +1, B → −1
    assert pairwise_scores([A, INVALID, B], "binary").tolist() == [1, 0, -1]
    d = preference_matrix(torch.tensor([[1.0, 0.0, -1.0]]), group_pairs(3), 3)
    assert d[0, 0, 2] == 0 and d[0, 2, 0] == 0
    # length-normalised: +1/100, 0 (invalid stays 0), −1/50
    assert approx(pairwise_scores([A, INVALID, B], "binary", [100, 7, 50], length_normalize=True),
                  [0.01, 0.0, -0.02])
    with pytest.raises(ConfigError, match="length"):
        pairwise_scores([A], "binary", length_normalize=True)
    with pytest.raises(ConfigError, match="multiclass verdict"):
        pairwise_scores([A], "multiclass")


def test_preference_matrix_averages_both_orders():
    pairs = group_pairs(2, both_orders=True)  # [(0,1), (1,0)]
    # (0,1) says 0 better by 3; (1,0) scores −1 = "1 worse" = 0 better by 1 → d01 = (3 − (−1))/2 = 2
    # second group: the judge always picks position A (+1, +1) → d01 = (1 − 1)/2 = 0 (bias cancels)
    d = preference_matrix(torch.tensor([[3.0, -1.0], [1.0, 1.0]]), pairs, 2)
    assert d.tolist() == [[[0, 2], [-2, 0]], [[0, 0], [0, 0]]]
    with pytest.raises(ConfigError, match="more than once"):
        preference_matrix(torch.tensor([[3.0, -1.0]]), pairs, 2, average_repeats=False)
    with pytest.raises(ConfigError, match="pair"):
        preference_matrix(torch.tensor([[1.0]]), [(0, 0)], 2)


def test_pairwise_reduces_to_grpo_for_reward_differences():
    # d_ij = r_i − r_j ⇒ numerator = r_i − mean, root = unbiased std ⇒ GRPO (up to where eps sits)
    r = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 2.0, 3.0, 7.0]])
    d = r.unsqueeze(-1) - r.unsqueeze(-2)
    assert approx(pairwise_advantages(d, eps=0.0), grpo_advantages(r, eps=0.0))
    with pytest.raises(ConfigError, match="skew"):
        pairwise_advantages(torch.ones(1, 2, 2))
    # without the scale: the centred score alone, r_i − mean(r) = (−1, −1, 1, 1) and (−2.25, −1.25, −0.25, 3.75)
    centred = [[-1, -1, 1, 1], [-2.25, -1.25, -0.25, 3.75]]
    assert approx(pairwise_advantages(d, scale_by_std=False), centred)
    assert approx(grpo_advantages(r, scale_by_std=False), centred)


def test_the_rl_step_feeds_each_estimator_the_score_it_reads():
    from dataclasses import replace

    from nemo_thinkrm.config.rl import GRPOConfig
    from nemo_thinkrm.generation.interface import GenerationOutput
    from nemo_thinkrm.trainers.policy import Scores, filtered_advantages

    r = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
    d = r.unsqueeze(-1) - r.unsqueeze(-2)
    outs = [GenerationOutput(str(k), "", 1, "stop") for k in range(8)]
    grpo = replace(GRPOConfig(), scale_by_std=False, filters=["drop_uniform_groups"])
    scores = Scores(rewards=r)
    assert filtered_advantages(grpo, scores, outs).tolist() == [-1, -1, 1, 1, 0, 0, 0, 0]
    assert scores.metrics == {"dropped_groups": 0.5}
    pairwise = replace(grpo, advantage="pairwise")
    assert filtered_advantages(pairwise, Scores(preferences=d), outs).tolist() == [-1, -1, 1, 1, 0, 0, 0, 0]
    with pytest.raises(ConfigError, match="reads rewards"):
        filtered_advantages(grpo, Scores(preferences=d), outs)
    with pytest.raises(RuntimeError, match="for 4 samples"):
        filtered_advantages(grpo, Scores(rewards=r), outs[:4])


# --------------------------------------------------------------------------- rewards

GOOD_A = "<think>Response A cites the source; B does not.</think>\n<answer>A</answer>"
GOOD_M2 = "<think>A is clearly more helpful.</think>\n<answer>-2</answer>"


def test_binary_reward_on_judge_text():
    binary = REWARDS.get("binary")
    assert binary(GOOD_A, "A", mode="binary") == 1.0          # right
    assert binary(GOOD_A, "B", mode="binary") == 0.0          # wrong
    assert binary("<think>hmm</think><answer>neither</answer>", "A", mode="binary") == 0.0  # invalid
    assert binary("<think>A wins</think><answer>A", "A", mode="binary") == 0.0  # truncated block
    assert binary(GOOD_M2, -1, mode="multiclass") == 1.0      # multiclass compared on sign


def test_multiclass_reward_on_judge_text():
    multiclass = REWARDS.get("multiclass")
    assert multiclass(GOOD_M2, -2, mode="multiclass") == 1.0  # exact strength
    assert multiclass(GOOD_M2, -1, mode="multiclass") == 0.5  # right sign
    assert multiclass(GOOD_M2, 3, mode="multiclass") == 0.0   # wrong side
    assert multiclass("<answer>0</answer>", -2, mode="multiclass") == 0.0  # 0 is invalid
    with pytest.raises(ConfigError, match="mode='multiclass'"):
        multiclass(GOOD_A, -2, mode="binary")


def test_format_bonus_and_length_penalty():
    fmt = REWARDS.get("format_bonus")
    assert fmt(GOOD_A, "B", mode="binary") == 1.0  # format only: the label does not matter
    assert fmt("<think>x</think><think>y</think><answer>A</answer>", "A", mode="binary") == 0.0
    assert fmt("<answer>A</answer></think>", "A", mode="binary") == 0.0   # </think> after the answer
    assert fmt("no think <answer>A</answer>", "A", mode="binary") == 0.0
    assert fmt("<think>x</think><answer>none</answer>", "A", mode="binary") == 0.0  # invalid verdict
    pen = REWARDS.get("length_penalty")
    # −min(1, max(0, n − t)/t): n=80 → 0; n=150 → −50/100 = −0.5; n=300 → −min(1, 2) = −1
    assert pen("", "A", mode="binary", n_tokens=80, target=100) == 0.0
    assert pen("", "A", mode="binary", n_tokens=150, target=100) == -0.5
    assert pen("", "A", mode="binary", n_tokens=300, target=100) == -1.0
    with pytest.raises(ConfigError, match="n_tokens"):
        pen("", "A", mode="binary")


def test_combine_weighted_sum():
    reward = combine({"binary": 1.0, "format_bonus": 0.1})
    assert reward(GOOD_A, "A", mode="binary") == pytest.approx(1.1)  # 1·1 + 0.1·1
    assert reward(GOOD_A, "B", mode="binary") == pytest.approx(0.1)  # 1·0 + 0.1·1
    shaped = combine({"binary": 1.0, "length_penalty": 0.5})
    # 1 + 0.5·(−0.5) = 0.75; extra kwargs reach every term
    assert shaped(GOOD_A, "A", mode="binary", n_tokens=150, target=100) == pytest.approx(0.75)
    with pytest.raises(ConfigError, match="binary"):
        combine({"bianry": 1.0})
    with pytest.raises(ConfigError):
        combine({})


def test_gspo_one_ratio_per_sample_by_hand():
    # sample 0: log ρ = (0.1, 0.3) on its 2 response tokens → s0 = e^0.2 = 1.221403, A = +1, clipped at 1.2
    # sample 1: log ρ = (0, −0.3, 0) → s1 = e^−0.1 = 0.904837, A = −1, inside [0.8, 1.2]
    from nemo_thinkrm.config.registry import POLICY_LOSSES

    old = torch.zeros(2, 3)
    lp = torch.tensor([[0.1, 0.3, 9.0], [0.0, -0.3, 0.0]], requires_grad=True)
    batch = {"old_logprob": old, "advantages": torch.tensor([[1.0] * 3, [-1.0] * 3]),
             "response_mask": torch.tensor([[1, 1, 0], [1, 1, 1]])}
    gspo = POLICY_LOSSES.get("gspo")
    loss, count, stats = gspo(batch, lp, clip_eps=0.2, aggregation="seq_mean_token_mean")
    s1 = math.exp(-0.1)
    assert count == 2 and approx(loss, -1.2 + s1)  # (1/G)·Σ min(s·A, clip(s)·A), as a sum over samples
    assert approx(stats["clipfrac_sum"], 2) and approx(stats["ratio_sum"], 2 * math.exp(0.2) + 3 * s1)
    loss.backward()
    # sample 0 clipped: no gradient; sample 1: d/dlp_t [−A·s1] = s1 / 3 on each of its tokens
    assert approx(lp.grad, [[0, 0, 0], [s1 / 3] * 3])
    tokens, n = gspo(batch, lp.detach(), clip_eps=0.2)[:2]  # token_mean: every token carries its sample's value
    assert n == 5 and approx(tokens, 2 * -1.2 + 3 * s1)
    # the token-level PPO loss differs: sample 0's ratios e^0.1 (inside) and e^0.3 (clipped to 1.2);
    # sample 1's e^−0.3 = 0.741 < 0.8 with A < 0 takes the clipped 0.8
    ppo = POLICY_LOSSES.get("ppo_clip")(batch, lp.detach(), clip_eps=0.2)[0]
    assert approx(ppo, -math.exp(0.1) - 1.2 + (1 + 0.8 + 1))


def test_overlong_penalty_and_truncation_mask_by_hand():
    pen = REWARDS.get("overlong_penalty")
    kw = {"mode": "binary", "max_new_tokens": 100, "overlong_window": 20}
    # free up to 100 − 20 = 80 tokens; then (80 − n) / 20: 90 → −0.5, 100 (cut at the limit) → −1
    assert [pen("x", "A", n_tokens=n, **kw) for n in (0, 80, 81, 90, 100)] == [0.0, 0.0, -0.05, -0.5, -1.0]
    with pytest.raises(ConfigError, match="overlong_window"):
        pen("x", "A", mode="binary", n_tokens=5, max_new_tokens=100)
    with pytest.raises(ConfigError, match="overlong_window must be in"):
        pen("x", "A", n_tokens=5, **{**kw, "overlong_window": 101})
    cut = torch.tensor([[False, True], [False, True]])
    adv, metrics = BATCH_FILTERS.get("mask_truncated")(torch.tensor([[0.5, -1.0], [2.0, 3.0]]), rewards=None,
                                                       preferences=None, truncated=cut)
    assert adv.tolist() == [[0.5, 0.0], [2.0, 0.0]] and metrics == {"masked_truncated": 0.5}


def test_dynamic_sampling_parts_by_hand():
    from nemo_thinkrm.generation.interface import GenerationOutput
    from nemo_thinkrm.algorithms.filters import has_signal
    from nemo_thinkrm.trainers.policy import Scores, choose_prompts, kept_groups, take_groups

    # draws are disjoint slices of one permutation, the first is the step's usual prompts
    first, second = choose_prompts(10, 4, 0, 3), choose_prompts(10, 4, 0, 3, draw=1)
    assert len(second) == 4 and not set(first) & set(second) and choose_prompts(10, 4, 0, 3, draw=2) == \
        [i for i in range(10) if i not in first + second]
    r0 = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])   # group 0 has signal
    r1 = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.5]])   # groups 1 and 2
    # dynamic_sampling is a refilling filter: it keeps the groups with signal and zeroes the rest
    ds = BATCH_FILTERS.get("dynamic_sampling")
    assert ds.refills is has_signal and not hasattr(BATCH_FILTERS.get("drop_uniform_groups"), "refills")
    assert kept_groups(Scores(rewards=r0), ds.refills) == [0] and kept_groups(Scores(rewards=r1), has_signal) == [1, 2]
    adv, metrics = ds(torch.ones(3, 2), rewards=r1, preferences=None, truncated=torch.zeros(3, 2, dtype=torch.bool))
    assert adv.tolist() == [[0, 0], [1, 1], [1, 1]] and metrics["dropped_groups"] == pytest.approx(1 / 3)
    d = torch.zeros(2, 2, 2)
    d[1, 0, 1], d[1, 1, 0] = 1.0, -1.0
    assert kept_groups(Scores(preferences=d), has_signal) == [1]

    def part(tag, r):
        outs = [GenerationOutput(f"{tag}{k}", "", 1, "stop") for k in range(r.numel())]
        return outs, Scores(rewards=r, metrics={"reward_mean": float(r.mean())},
                            columns={"reward": r.view(-1).tolist()})
    parts = [part("a", r0), part("b", r1)]
    # 3 groups wanted: signal first (a0, b1, b2), in draw order
    samples, scores = take_groups(parts, [(0, 0), (1, 1), (1, 2)], 2)
    assert [x.id for x in samples] == ["a0", "a1", "b2", "b3", "b4", "b5"]
    assert scores.rewards.tolist() == [[1, 0], [0, 1], [1, 0.5]] and scores.columns["reward"] == [1, 0, 0, 1, 1, 0.5]
    assert scores.metrics == {"reward_mean": float(r0.mean())}


def test_position_consistent_reward_by_hand():
    from nemo_thinkrm.algorithms.rewards import position_consistency

    consistent = REWARDS.get("consistent")
    right_a, right_b = "<answer>A</answer>", "<answer>B</answer>"
    # the pair shown as (chosen, rejected): label A; its other order: label B
    assert consistent(right_a, "A", mode="binary", partner=(right_b, "B")) == 1.0
    assert consistent(right_b, "B", mode="binary", partner=(right_a, "A")) == 1.0
    # a judge that always answers "A" is right in one order only: no reward in either
    assert consistent(right_a, "A", mode="binary", partner=(right_a, "B")) == 0.0
    assert consistent(right_a, "B", mode="binary", partner=(right_a, "A")) == 0.0
    assert consistent("no verdict", "A", mode="binary", partner=(right_b, "B")) == 0.0
    # multiclass verdicts compare on the sign (-3 for a labelled -1 is right)
    assert consistent("<answer>-3</answer>", -1, mode="multiclass", partner=("<answer>2</answer>", 1)) == 1.0
    with pytest.raises(ConfigError, match="needs swap=both"):
        consistent(right_a, "A", mode="binary")
    # summed with other terms, the need for a partner travels with the sum
    assert combine({"consistent": 1.0, "format_bonus": 0.1}).needs_partner
    assert not getattr(combine({"binary": 1.0}), "needs_partner", False)

    # one group of 4: samples (0, 1) judge the pair in orders AB, BA; so do (2, 3)
    correct = torch.tensor([[True, True, True, False]])
    valid = torch.tensor([[True, True, True, True]])
    # consistent = both valid and naming the same response: pair (0, 1) yes, pair (2, 3) no → 1/2
    assert position_consistency(correct, valid) == 0.5
    # a judge that always answers "A": right in one order, wrong in the other → never consistent
    always_a = torch.tensor([[True, False, True, False]])
    assert position_consistency(always_a, valid) == 0.0
    # both wrong but valid: consistent (same response named in both orders), no reward
    assert position_consistency(torch.zeros(1, 2, dtype=torch.bool), torch.ones(1, 2, dtype=torch.bool)) == 1.0
    with pytest.raises(ConfigError, match="even group_size"):
        position_consistency(torch.ones(1, 3, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool))


def test_a_group_takes_its_prompt_variants_in_turn():
    from nemo_thinkrm.trainers.policy import rollout_requests

    reqs = rollout_requests(["p0", "p1"], ["plain", ("AB", "BA")], [1, 0], 4, step=2)
    assert [(r.id, r.prompt) for r in reqs] == [
        ("p1:g0", "AB"), ("p1:g1", "BA"), ("p1:g2", "AB"), ("p1:g3", "BA"),
        ("p0:g0", "plain"), ("p0:g1", "plain"), ("p0:g2", "plain"), ("p0:g3", "plain")]
    assert len({r.seed for r in reqs}) == 8
