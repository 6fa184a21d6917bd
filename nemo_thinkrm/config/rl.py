"""The policy-gradient options, checked once, where a config is validated.

Torch-free on purpose: ``PolicyRLConfig.validate`` calls ``check_pg_options`` before any
model is built, so a mistyped ``kl_estimator`` fails at start-up, not inside the loss
after the first rollout; ``algorithms/pg_loss.py`` calls the same function for direct
use. The names are checked against ``config/registry.py``.
"""

from __future__ import annotations

import math
from typing import Optional

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.registry import AGGREGATIONS, KL_ESTIMATORS


def _number(x: object) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)


def check_pg_options(clip_eps: float, clip_eps_high: Optional[float], dual_clip_c: Optional[float],
                     kl_coef: float, aggregation: str, kl_estimator: str = "k3") -> tuple[float, float]:
    """Validated (ε_low, ε_high); ConfigError naming the option for impossible settings."""
    if not _number(clip_eps) or not 0 < clip_eps < 1:
        raise ConfigError(f"clip_eps must be in (0, 1) so that 1 - clip_eps > 0, got {clip_eps!r}")
    eps_high = clip_eps if clip_eps_high is None else clip_eps_high
    if not _number(eps_high) or not eps_high > 0:
        raise ConfigError(f"clip_eps_high must be > 0, got {clip_eps_high!r}")
    if dual_clip_c is not None and (not _number(dual_clip_c) or not dual_clip_c > 1):
        raise ConfigError(f"dual_clip_c must be > 1 (it caps the ratio for A < 0), got {dual_clip_c!r}")
    if not _number(kl_coef) or kl_coef < 0:
        raise ConfigError(f"kl_coef must be a finite number >= 0, got {kl_coef!r}")
    AGGREGATIONS.check(aggregation, "aggregation")
    KL_ESTIMATORS.check(kl_estimator, "kl_estimator")
    return float(clip_eps), float(eps_high)
