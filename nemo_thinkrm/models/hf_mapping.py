"""🤗 ↔ megatron parameter mapping for Llama-3.x, Qwen2/2.5 and Qwen3.

Three layers of pure functions, so every piece is testable on its own:

* ``parameter_rules`` lists, for one model, each megatron parameter (global layer
  numbering) with the 🤗 tensors it is made of and how (copy, fused QKV, fused
  gate/up) and along which dimension TP shards it.
* ``fuse`` / ``split`` turn 🤗 tensors into the *full* (unsharded) megatron
  tensor and back.
* ``shard`` / ``unshard`` cut a full tensor into this TP rank's piece and glue
  the pieces back.

Layouts (checked against megatron-core 0.16.1's attention code):
fused QKV rows are ordered per query group ``[q heads of group g; k_g; v_g]`` and
TP ranks hold contiguous row chunks of it (also when KV groups < TP, where
megatron all-gathers and re-slices). ``linear_fc1`` is ``[gate; up]`` *per rank*:
gate and up are each chunked over TP and each rank concatenates its two chunks,
so a plain chunk of the full fused tensor is wrong at TP>1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Literal, Mapping, Optional, Sequence

import torch

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import ModelConfig

FuseKind = Literal["copy", "qkv", "gate_up"]


@dataclass(frozen=True)
class ParamRule:
    """One megatron parameter and the 🤗 tensors it is built from."""

    megatron_name: str
    """Name in the megatron module's state dict, with the *global* layer number."""
    hf_names: tuple[str, ...]
    kind: FuseKind
    tp_dim: Optional[int]
    """Dimension sharded over TP (0: column-parallel/vocab, 1: row-parallel, None: replicated)."""
    vocab: bool = False
    """Rows are vocabulary entries (padded to a TP multiple)."""
    layer: Optional[int] = None
    """Global layer number, None for embedding / final norm / output layer."""


def parameter_rules(cfg: ModelConfig, backend: str = "local") -> list[ParamRule]:
    """Every megatron parameter of the whole model (all stages), in 🤗 file order."""
    rules = [ParamRule("embedding.word_embeddings.weight", ("model.embed_tokens.weight",),
                       "copy", 0, vocab=True)]
    te = backend == "te"
    for i in range(cfg.num_layers):
        hf = f"model.layers.{i}."
        mc = f"decoder.layers.{i}."
        attn_norm = mc + ("self_attention.linear_qkv.layer_norm_weight" if te else "input_layernorm.weight")
        mlp_norm = mc + ("mlp.linear_fc1.layer_norm_weight" if te else "pre_mlp_layernorm.weight")
        layer_rules = [
            ParamRule(attn_norm, (hf + "input_layernorm.weight",), "copy", None),
            ParamRule(mc + "self_attention.linear_qkv.weight",
                      tuple(hf + f"self_attn.{p}_proj.weight" for p in "qkv"), "qkv", 0),
            ParamRule(mc + "self_attention.linear_proj.weight", (hf + "self_attn.o_proj.weight",), "copy", 1),
            ParamRule(mlp_norm, (hf + "post_attention_layernorm.weight",), "copy", None),
            ParamRule(mc + "mlp.linear_fc1.weight",
                      (hf + "mlp.gate_proj.weight", hf + "mlp.up_proj.weight"), "gate_up", 0),
            ParamRule(mc + "mlp.linear_fc2.weight", (hf + "mlp.down_proj.weight",), "copy", 1),
        ]
        if cfg.add_qkv_bias:
            layer_rules.insert(2, ParamRule(mc + "self_attention.linear_qkv.bias",
                                            tuple(hf + f"self_attn.{p}_proj.bias" for p in "qkv"), "qkv", 0))
        if cfg.qk_layernorm:
            layer_rules += [
                ParamRule(mc + "self_attention.q_layernorm.weight", (hf + "self_attn.q_norm.weight",), "copy", None),
                ParamRule(mc + "self_attention.k_layernorm.weight", (hf + "self_attn.k_norm.weight",), "copy", None),
            ]
        rules += [ParamRule(r.megatron_name, r.hf_names, r.kind, r.tp_dim, r.vocab, layer=i) for r in layer_rules]
    rules.append(ParamRule("decoder.final_layernorm.weight", ("model.norm.weight",), "copy", None))
    if cfg.head == "reward":  # replicated over TP (models/reward_head.py), never tied
        rules.append(ParamRule("output_layer.weight", ("score.weight",), "copy", None))
    elif not cfg.tie_word_embeddings:
        rules.append(ParamRule("output_layer.weight", ("lm_head.weight",), "copy", 0, vocab=True))
    return rules


# ---------------------------------------------------------------- fuse / split

def fuse(rule: ParamRule, tensors: Sequence[torch.Tensor], cfg: ModelConfig) -> torch.Tensor:
    """🤗 tensors → the full megatron tensor for one rule."""
    if rule.kind == "copy":
        return tensors[0]
    if rule.kind == "gate_up":
        return torch.cat(tensors, dim=0)
    q, k, v = tensors
    groups, hd = cfg.num_query_groups, cfg.head_dim
    per_group = cfg.num_attention_heads // groups
    trailing = q.shape[1:]
    q = q.reshape(groups, per_group * hd, *trailing)
    k = k.reshape(groups, hd, *trailing)
    v = v.reshape(groups, hd, *trailing)
    return torch.cat([q, k, v], dim=1).reshape(groups * (per_group + 2) * hd, *trailing)


def split(rule: ParamRule, full: torch.Tensor, cfg: ModelConfig) -> list[torch.Tensor]:
    """The full megatron tensor → its 🤗 tensors (inverse of ``fuse``)."""
    if rule.kind == "copy":
        return [full]
    if rule.kind == "gate_up":
        return list(full.chunk(2, dim=0))
    groups, hd = cfg.num_query_groups, cfg.head_dim
    per_group = cfg.num_attention_heads // groups
    trailing = full.shape[1:]
    grouped = full.reshape(groups, (per_group + 2) * hd, *trailing)
    q, k, v = grouped.split([per_group * hd, hd, hd], dim=1)
    return [t.reshape(-1, *trailing) for t in (q, k, v)]


# ---------------------------------------------------------------- shard / unshard

def pad_vocab(full: torch.Tensor, padded_rows: int) -> torch.Tensor:
    if full.shape[0] == padded_rows:
        return full
    pad = full.new_zeros((padded_rows - full.shape[0], *full.shape[1:]))
    return torch.cat([full, pad], dim=0)


def shard(rule: ParamRule, full: torch.Tensor, tp_rank: int, tp_size: int) -> torch.Tensor:
    """This TP rank's piece of a full megatron tensor (vocab rows already padded)."""
    if rule.tp_dim is None or tp_size == 1:
        return full
    if full.shape[rule.tp_dim] % tp_size != 0:
        raise ConfigError(f"{rule.megatron_name}: dim {rule.tp_dim} of shape {tuple(full.shape)} "
                          f"does not divide by TP size {tp_size}")
    if rule.kind == "gate_up":
        gate, up = full.chunk(2, dim=0)
        return torch.cat([gate.chunk(tp_size, 0)[tp_rank], up.chunk(tp_size, 0)[tp_rank]], dim=0)
    return full.chunk(tp_size, dim=rule.tp_dim)[tp_rank].contiguous()


def unshard(rule: ParamRule, pieces: Sequence[torch.Tensor]) -> torch.Tensor:
    """Glue all TP ranks' pieces (in rank order) back into the full tensor."""
    if rule.tp_dim is None or len(pieces) == 1:
        return pieces[0]
    if rule.kind == "gate_up":
        halves = [p.chunk(2, dim=0) for p in pieces]
        return torch.cat([h[0] for h in halves] + [h[1] for h in halves], dim=0)
    return torch.cat(list(pieces), dim=rule.tp_dim)


# ---------------------------------------------------------------- whole-model helpers

def local_layer_name(global_name: str, layer_offset: int) -> str:
    """``decoder.layers.{global}.x`` → ``decoder.layers.{global - offset}.x`` for this stage."""
    if not global_name.startswith("decoder.layers."):
        return global_name
    rest = global_name[len("decoder.layers."):]
    idx, tail = rest.split(".", 1)
    return f"decoder.layers.{int(idx) - layer_offset}.{tail}"


def stage_rules(cfg: ModelConfig, backend: str, pp_rank: int, pp_size: int,
                has_embedding: bool, has_output: bool) -> list[tuple[ParamRule, str]]:
    """Rules this pipeline stage owns, paired with the stage-local megatron name.

    Tied embeddings on a multi-stage pipeline: the last stage keeps its own copy
    of the embedding as ``output_layer.weight``, so it gets a rule for it too.
    """
    per_stage = cfg.num_layers // pp_size
    first, last = pp_rank * per_stage, (pp_rank + 1) * per_stage
    out: list[tuple[ParamRule, str]] = []
    for rule in parameter_rules(cfg, backend):
        if rule.layer is not None:
            if first <= rule.layer < last:
                out.append((rule, local_layer_name(rule.megatron_name, first)))
        elif rule.megatron_name.startswith("embedding."):
            if has_embedding:
                out.append((rule, rule.megatron_name))
            if has_output and cfg.tie_word_embeddings and cfg.head == "lm" and pp_size > 1:
                out.append((rule, "output_layer.weight"))
        elif rule.megatron_name.startswith("decoder.final_layernorm"):
            if has_output:
                out.append((rule, rule.megatron_name))
        elif has_output:
            out.append((rule, rule.megatron_name))
    return out


def load_full_tensors_into_megatron(module: torch.nn.Module, cfg: ModelConfig,
                                    get_full: Callable[[ParamRule], torch.Tensor],
                                    tp_rank: int, tp_size: int, pp_rank: int, pp_size: int,
                                    progress: bool = False) -> int:
    """Fill this rank's megatron module from full (unsharded) tensors; return tensors set.

    ``get_full(rule)`` returns the full megatron-layout tensor of a rule (from 🤗
    tensors via ``fuse``, or from a NeMo 1.x checkpoint's TP pieces). Every
    parameter of the module must receive a tensor: one left at its init — e.g. an
    unexpected bias — is invisible in logits until it is not, so an unmapped
    parameter is an error naming it.
    """
    backend = getattr(module, "layer_backend", "local")
    params = dict(module.named_parameters())
    has_embedding = "embedding.word_embeddings.weight" in params
    has_output = "decoder.final_layernorm.weight" in params
    assigned: set[str] = set()
    pairs = stage_rules(cfg, backend, pp_rank, pp_size, has_embedding, has_output)
    if progress:
        from tqdm import tqdm

        pairs = tqdm(pairs, desc="loading tensors", unit="tensor")
    for rule, local_name in pairs:
        if local_name not in params:
            raise ConfigError(f"megatron model has no parameter {local_name!r} (from {rule.hf_names}); "
                              "the architecture config does not match the module")
        target = params[local_name]
        full = get_full(rule)
        if rule.vocab:
            full = pad_vocab(full, target.shape[0] * (tp_size if rule.tp_dim == 0 else 1))
        piece = shard(rule, full, tp_rank, tp_size)
        if piece.shape != target.shape:
            raise ConfigError(f"shape mismatch for {local_name} (from {', '.join(rule.hf_names)}): "
                              f"checkpoint gives {tuple(piece.shape)}, model expects {tuple(target.shape)}")
        with torch.no_grad():
            target.copy_(piece.to(target.dtype))
        assigned.add(local_name)
    missing = sorted(set(params) - assigned)
    if missing:
        raise ConfigError(f"parameters with no source tensor (architecture mismatch?): {missing}")
    return len(assigned)


def load_hf_into_megatron(module: torch.nn.Module, cfg: ModelConfig,
                          get_hf_tensor: Callable[[str], torch.Tensor],
                          tp_rank: int, tp_size: int, pp_rank: int, pp_size: int,
                          progress: bool = False) -> int:
    """Copy 🤗 tensors (by 🤗 name) into this rank's megatron module."""
    return load_full_tensors_into_megatron(
        module, cfg, lambda rule: fuse(rule, [get_hf_tensor(n) for n in rule.hf_names], cfg),
        tp_rank, tp_size, pp_rank, pp_size, progress)


def exported_rules(module: torch.nn.Module, cfg: ModelConfig, pp_rank: int,
                   pp_size: int) -> list[tuple[ParamRule, str]]:
    """(rule, stage-local name) of every parameter this stage exports, in rule order.

    The tied-embedding copy on the last stage is skipped (the first stage exports it).
    """
    backend = getattr(module, "layer_backend", "local")
    params = dict(module.named_parameters())
    has_embedding = "embedding.word_embeddings.weight" in params
    has_output = "decoder.final_layernorm.weight" in params
    return [(rule, local_name) for rule, local_name
            in stage_rules(cfg, backend, pp_rank, pp_size, has_embedding, has_output)
            if not (local_name == "output_layer.weight" and rule.megatron_name != "output_layer.weight")]


def full_tensor(rule: ParamRule, pieces: Sequence[torch.Tensor], cfg: ModelConfig) -> torch.Tensor:
    """All TP ranks' pieces (rank order) → the full megatron tensor, vocab padding dropped."""
    full = unshard(rule, pieces)
    return full[: cfg.vocab_size] if rule.vocab else full


def iter_megatron_full_tensors(module: torch.nn.Module, cfg: ModelConfig,
                               gather_tp: Callable[[torch.Tensor], list[torch.Tensor]],
                               pp_rank: int, pp_size: int) -> Iterator[tuple[ParamRule, torch.Tensor]]:
    """Yield (rule, full tensor) for every parameter this stage exports, gathering TP pieces.

    ``gather_tp`` returns all TP ranks' pieces in rank order (identity list at TP=1).
    """
    params = dict(module.named_parameters())
    for rule, local_name in exported_rules(module, cfg, pp_rank, pp_size):
        yield rule, full_tensor(rule, gather_tp(params[local_name].detach()), cfg)


def megatron_to_hf_tensors(rule: ParamRule, full: torch.Tensor, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    return dict(zip(rule.hf_names, split(rule, full, cfg)))


def check_hf_names(cfg: ModelConfig, available: Mapping[str, object] | set[str]) -> None:
    """Fail early, naming 🤗 tensors the architecture needs but the checkpoint lacks, and
    tensors the checkpoint has but the architecture would ignore (e.g. Qwen2 biases
    read with a Llama config): both mean the config does not describe the weights."""
    needed = {n for r in parameter_rules(cfg) for n in r.hf_names}
    have = set(available)
    missing = sorted(needed - have)
    if missing:
        raise ConfigError(f"🤗 checkpoint lacks {len(missing)} tensor(s) the {cfg.family} architecture "
                          f"needs, e.g. {missing[:5]}")
    # rotary inv_freq buffers are saved by some old exports; they are recomputed, not loaded
    unused = sorted(n for n in have - needed if not n.endswith("rotary_emb.inv_freq"))
    if cfg.tie_word_embeddings and cfg.head == "lm":
        unused = [n for n in unused if n != "lm_head.weight"]
    if unused:
        raise ConfigError(f"🤗 checkpoint has {len(unused)} tensor(s) the {cfg.family} architecture "
                          f"would ignore, e.g. {unused[:5]}; check the model family/config")
