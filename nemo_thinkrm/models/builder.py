"""Build a megatron-core ``GPTModel`` for one pipeline stage from a ModelConfig.

The builder is the only place that translates our architecture fields into
megatron's ``TransformerConfig`` + ``GPTModel`` arguments. Several megatron defaults
silently differ from 🤗 (bias, epsilon, kv_channels, …): every one is set explicitly
here, and the parity tests (``tests/models``) compare logits with 🤗's.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import ModelConfig
from nemo_thinkrm.config.parallel import ParallelConfig, RecomputeConfig
from nemo_thinkrm.models.layer_spec import Backend, choose_backend, layer_spec_for
from nemo_thinkrm.models.reward_head import attach_reward_head
from nemo_thinkrm.runtime.device import cuda_available, place_module, torch_dtype


def padded_vocab_size(vocab_size: int, tp_size: int) -> int:
    """Megatron shards the vocabulary evenly across TP ranks; round up so it divides.

    Padded rows are zero in the embedding and output layer, are never produced by
    the tokenizer, and are sliced off on export and in ``gather_logits``.
    """
    return -(-vocab_size // tp_size) * tp_size


def transformer_config(model: ModelConfig, parallel: ParallelConfig,
                       recompute: Optional[RecomputeConfig] = None):
    from megatron.core.transformer.transformer_config import TransformerConfig

    dtype = torch_dtype(model.params_dtype)
    recompute = recompute or RecomputeConfig()
    kwargs = dict(
        num_layers=model.num_layers,
        hidden_size=model.hidden_size,
        ffn_hidden_size=model.ffn_hidden_size,
        num_attention_heads=model.num_attention_heads,
        num_query_groups=model.num_query_groups,
        kv_channels=model.head_dim,
        normalization="RMSNorm",
        layernorm_epsilon=model.layernorm_epsilon,
        gated_linear_unit=True,
        activation_func=F.silu,
        add_bias_linear=False,
        add_qkv_bias=model.add_qkv_bias,
        qk_layernorm=model.qk_layernorm,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        init_method_std=model.init_method_std,
        params_dtype=dtype,
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        pipeline_dtype=dtype,
        tensor_model_parallel_size=parallel.tensor_model_parallel_size,
        pipeline_model_parallel_size=parallel.pipeline_model_parallel_size,
        context_parallel_size=parallel.context_parallel_size,
        sequence_parallel=parallel.sequence_parallel,
        # Fusions need apex/TE kernels; the unfused paths are numerically the reference.
        bias_activation_fusion=False,
        bias_dropout_fusion=False,
        masked_softmax_fusion=False,
        persist_layer_norm=False,
        apply_rope_fusion=False,
        gradient_accumulation_fusion=False,
        attention_softmax_in_fp32=True,
        use_cpu_initialization=not cuda_available(),
        recompute_granularity=recompute.granularity,
    )
    if recompute.granularity == "full":
        kwargs.update(recompute_method=recompute.method, recompute_num_layers=recompute.num_layers)
    return TransformerConfig(**kwargs)


def build_gpt_model(model: ModelConfig, parallel: ParallelConfig, *,
                    backend: str = "auto", recompute: Optional[RecomputeConfig] = None,
                    parallel_output: bool = True, head_seed: int = 0) -> "torch.nn.Module":
    """Build this rank's stage of the model (megatron parallel state must be initialised).

    ``parallel_output=True`` keeps logits sharded over the vocabulary (what the
    vocab-parallel cross entropy wants); ``gather_logits`` assembles full logits for
    inspection and parity tests. ``model.head == "reward"`` ends the model in a scalar reward
    head (initialised from ``head_seed``) instead of the vocabulary projection.
    """
    from megatron.core import parallel_state
    from megatron.core.models.gpt import GPTModel

    model.validate()
    chosen: Backend = choose_backend(backend)
    config = transformer_config(model, parallel, recompute)
    tp = parallel_state.get_tensor_model_parallel_world_size()
    gpt = GPTModel(
        config=config,
        transformer_layer_spec=layer_spec_for(model, chosen),
        vocab_size=padded_vocab_size(model.vocab_size, tp),
        max_sequence_length=model.max_position_embeddings,
        pre_process=parallel_state.is_pipeline_first_stage(),
        post_process=parallel_state.is_pipeline_last_stage(),
        parallel_output=parallel_output,
        share_embeddings_and_output_weights=model.tie_word_embeddings and model.head == "lm",
        position_embedding_type="rope",
        rotary_percent=1.0,
        rotary_base=int(model.rotary_base) if float(model.rotary_base).is_integer() else model.rotary_base,
    )
    _set_rope_frequencies(gpt, model)
    gpt.layer_backend = chosen  # read by the HF mapping (TE fuses norms into linears)
    gpt.thinkrm_model_config = model
    gpt = place_module(gpt)
    if model.head == "reward":
        attach_reward_head(gpt, seed=head_seed)
    return gpt


def _set_rope_frequencies(gpt, model: ModelConfig) -> None:
    """Install 🤗-identical RoPE inverse frequencies, llama3 scaling included.

    megatron 0.16.1 only forwards ``factor`` for llama3 scaling and hard-codes
    low=1, high=4, original=8192; we recompute with the configured values and
    overwrite before the first forward (its cos/sin result is cached afterwards).
    """
    rope = getattr(gpt, "rotary_pos_emb", None)
    if rope is None:
        return
    dim = model.head_dim
    inv_freq = 1.0 / (model.rotary_base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    if model.rope_scaling is not None:
        rs = model.rope_scaling
        if rs.rope_type != "llama3":
            raise ConfigError(f"unsupported rope_scaling type {rs.rope_type!r}")
        inv_freq = rope._apply_scaling(
            inv_freq, factor=rs.factor, low_freq_factor=rs.low_freq_factor,
            high_freq_factor=rs.high_freq_factor,
            original_max_position_embeddings=rs.original_max_position_embeddings)
    rope.inv_freq = inv_freq.to(rope.inv_freq.device)


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
