"""Which transformer-layer implementation a model is built from.

The model code never branches on the backend: ``layer_spec_for`` returns a megatron
``ModuleSpec``, and ``GPTModel`` builds whatever it names. Transformer Engine's fused
layers when TE imports (GPU clusters), megatron's local (pure torch) layers
otherwise (CPU, tests). The HF↔Megatron mapping needs to know which one was used
because TE fuses the pre-attention/pre-MLP norms into the following linear layer.
"""

from __future__ import annotations

import functools
import logging
from typing import Literal

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import ModelConfig
from nemo_thinkrm.runtime.device import cuda_available

logger = logging.getLogger(__name__)

Backend = Literal["te", "local"]


@functools.lru_cache(maxsize=1)
def transformer_engine_usable() -> bool:
    """TE imports only on a CUDA host; an ImportError or a CUDA init error both mean no."""
    if not cuda_available():
        return False
    try:
        import transformer_engine.pytorch  # noqa: F401
    except Exception as exc:  # TE raises various errors when its CUDA libs mismatch
        logger.warning("Transformer Engine not usable (%s); using megatron's local layers", exc)
        return False
    return True


def choose_backend(requested: str = "auto") -> Backend:
    """Resolve "auto" to TE when usable; refuse "te" where TE cannot run."""
    if requested == "auto":
        return "te" if transformer_engine_usable() else "local"
    if requested == "te" and not transformer_engine_usable():
        raise ConfigError("layer_backend=te needs a CUDA host with transformer-engine installed "
                          "(pip install 'nemo-thinkrm[gpu]'); use layer_backend=auto or local")
    if requested not in ("te", "local"):
        raise ConfigError(f"layer_backend must be one of auto, te, local; got {requested!r}")
    return requested  # type: ignore[return-value]


def layer_spec_for(model: ModelConfig, backend: Backend):
    from megatron.core.models.gpt import gpt_layer_specs

    if backend == "te":
        return gpt_layer_specs.get_gpt_layer_with_transformer_engine_spec(
            num_experts=None, moe_grouped_gemm=False, qk_layernorm=model.qk_layernorm)
    # sdpa_attention subclasses megatron's attention at import: loaded only for the local spec
    from nemo_thinkrm.models import cpu_rope
    from nemo_thinkrm.models.sdpa_attention import SDPADotProductAttention

    cpu_rope.install()  # RoPE without concatenations for CPU tensors (megatron's own otherwise)

    spec = gpt_layer_specs.get_gpt_layer_local_spec(
        num_experts=None, moe_grouped_gemm=False, qk_layernorm=model.qk_layernorm,
        normalization="RMSNorm")
    spec.submodules.self_attention.submodules.core_attention = SDPADotProductAttention
    return spec
