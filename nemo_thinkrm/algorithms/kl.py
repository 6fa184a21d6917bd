"""Per-token estimators of KL(π_θ ‖ π_ref) from sampled-token log-probabilities.

Tokens are sampled from π_θ (on-policy), so with log-ratio
``r = ref_logprob − logprob = log(π_ref/π_θ)`` (Schulman, "Approximating KL
divergence", 2020, http://joschu.net/blog/kl-approx.html):

* ``k1 = −r = logprob − ref_logprob`` — unbiased, high variance, can be negative.
* ``k2 = ½ r²`` — biased, low variance, always ≥ 0.
* ``k3 = exp(r) − r − 1`` — unbiased, low variance, always ≥ 0 (since
  eˣ ≥ 1 + x). Think-RM's GRPO uses k3 as a loss term with coefficient 1e-4
  (verl ``kl_loss_type=low_var_kl``).

All share the signature ``(logprob, ref_logprob) -> Tensor`` (same shape, per
token); masking and reduction are the caller's job.
"""

from __future__ import annotations

from typing import Callable

import torch

from nemo_thinkrm.config.errors import ConfigError

KLEstimator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# exp(20) ≈ 4.9e8 is finite in float32/bfloat16 and far past any ratio a healthy
# run produces; beyond it the estimator only carries noise.
K3_LOG_RATIO_CLAMP = 20.0


def _check_shapes(logprob: torch.Tensor, ref_logprob: torch.Tensor) -> None:
    if logprob.shape != ref_logprob.shape:
        raise ConfigError(f"logprob {tuple(logprob.shape)} and ref_logprob {tuple(ref_logprob.shape)} "
                          "differ in shape")


def k1(logprob: torch.Tensor, ref_logprob: torch.Tensor) -> torch.Tensor:
    """``logprob − ref_logprob``: the plain log-ratio (verl "kl")."""
    _check_shapes(logprob, ref_logprob)
    return logprob - ref_logprob


def k2(logprob: torch.Tensor, ref_logprob: torch.Tensor) -> torch.Tensor:
    """``½ (logprob − ref_logprob)²`` (verl "mse")."""
    _check_shapes(logprob, ref_logprob)
    return 0.5 * (logprob - ref_logprob).square()


def k3(logprob: torch.Tensor, ref_logprob: torch.Tensor) -> torch.Tensor:
    """``exp(r) − r − 1`` with ``r = ref_logprob − logprob`` clamped to [−20, 20].

    The clamp keeps ``exp`` finite when the policy has drifted far from the
    reference on a token (or on a padding position with garbage log-probs),
    which would otherwise give inf loss and NaN gradients; inside the clamp the
    value is exact. (verl's ``low_var_kl`` instead clamps the *result* to
    [−10, 10]; clamping the log-ratio is the stricter guard against overflow.)
    """
    _check_shapes(logprob, ref_logprob)
    log_ratio = (ref_logprob - logprob).clamp(-K3_LOG_RATIO_CLAMP, K3_LOG_RATIO_CLAMP)
    return torch.exp(log_ratio) - log_ratio - 1.0
