"""Config validation messages and Hydra composition of every shipped config."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.config.model import ModelConfig, model_config_from_hf, model_config_to_hf
from nemo_thinkrm.config.parallel import ParallelConfig
from nemo_thinkrm.config.registry import register_schemas

CONF = Path(__file__).resolve().parents[3] / "conf"
STAGE_CONFIGS = sorted(p.stem for p in CONF.glob("*.yaml"))


def test_parallel_validation_names_the_clash():
    m = ModelConfig(num_attention_heads=6, num_query_groups=3, hidden_size=48)
    with pytest.raises(ConfigError, match=r"num_attention_heads \(6\).*tensor_model_parallel_size \(4\)"):
        ParallelConfig(tensor_model_parallel_size=4).validate(m, 4, cuda=False)
    with pytest.raises(ConfigError, match=r"world size \(3\).*TP×PP×CP"):
        ParallelConfig(tensor_model_parallel_size=2).validate(ModelConfig(), 3, cuda=False)
    with pytest.raises(ConfigError, match="need GPUs"):
        ParallelConfig(context_parallel_size=2).validate(ModelConfig(), 2, cuda=False)
    with pytest.raises(ConfigError, match=r"num_layers \(2\).*pipeline_model_parallel_size \(4\)"):
        ParallelConfig(pipeline_model_parallel_size=4).validate(ModelConfig(), 4, cuda=False)


def test_one_data_parallel_rank_on_gloo_trains_with_the_plain_optimizer():
    """The distributed optimizer's per-step copies over a one-rank gloo group slow every CPU operator
    (libgomp stops spinning once gloo's threads open OpenMP teams); nothing changes where it shards."""
    cpu_alone = ParallelConfig()
    reason = cpu_alone.resolve_for(1, "gloo")
    assert reason is not None and reason.startswith("parallel.use_distributed_optimizer=false")
    assert cpu_alone.use_distributed_optimizer is False
    assert cpu_alone.resolve_for(1, "gloo") is None  # already settled: said once
    for dp, backend in ((2, "gloo"), (1, "nccl"), (8, "nccl")):
        shards = ParallelConfig()
        assert shards.resolve_for(dp, backend) is None and shards.use_distributed_optimizer is True
    off = ParallelConfig(use_distributed_optimizer=False)
    assert off.resolve_for(2, "nccl") is None and off.use_distributed_optimizer is False


def test_model_validation():
    with pytest.raises(ConfigError, match="model.family='gpt2'"):
        ModelConfig(family="gpt2").validate()
    with pytest.raises(ConfigError, match=r"num_attention_heads \(4\) must be a multiple of.*\(3\)"):
        ModelConfig(num_query_groups=3).validate()


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3"])
def test_hf_config_roundtrip(family):
    from nemo_thinkrm.examples.tiny_hf import tiny_model_config

    cfg = tiny_model_config(family, llama3_rope=family == "llama", head_dim=32 if family == "qwen3" else None)
    back = model_config_from_hf(model_config_to_hf(cfg))
    assert back == cfg


def test_unsupported_architecture_is_refused():
    with pytest.raises(ConfigError, match="unsupported architecture.*MistralForCausalLM"):
        model_config_from_hf({"architectures": ["MistralForCausalLM"]})


# configs that need a user's data path before they validate
NEEDS_DATA = {"sft": ["data.train_path=/data/sft.jsonl"], "rm": ["data.path=/pairs.jsonl"],
              "best_of_n": ["data_path=/c.jsonl"],
              "pairwise_rlhf": ["prompt_path=/p.jsonl", "judge.model=/judge"],
              "tiny_pairwise_rlhf": ["prompt_path=/p.jsonl", "judge.model=/judge"],
              "tiny_grpo": ["data.path=/pairs.jsonl"],
              "self_train": ["pool.path=/pool.jsonl", "heldout.path=/heldout.jsonl"],
              "thinkrm_self_train_llama3_1_8b": ["pool.path=/pool.jsonl", "heldout.path=/heldout.jsonl",
                                                 "++launch.sft='bash slurm/on_allocation.sh'"]}


@pytest.mark.parametrize("name", STAGE_CONFIGS)
def test_every_config_composes_and_validates(name):
    register_schemas()
    extra = NEEDS_DATA.get(name, [])
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=name, overrides=["run_dir=/tmp/x", *extra])
    obj = OmegaConf.to_object(cfg)
    if ("8b" not in name and "3b" not in name) or "self_train" in name:  # self-train: its stages' recipes check
        obj.validate()
    else:  # cluster recipes: architecture and hyper-parameters validate; the layout needs GPUs
        obj.model.validate()
        obj.optim.validate()
        obj.parallel.validate(obj.model, 16, cuda=True)
    assert obj.run_dir == "/tmp/x"
    if "8b" in name and ("grpo" in name or "rlhf" in name):  # 4096-token rollouts need a KV-cached engine
        assert obj.rollout_engine == "vllm" and obj.generation.tensor_parallel_size == 1


@pytest.mark.parametrize("name", ["tiny_grpo", "tiny_pairwise_rlhf"])
def test_both_rl_stages_check_rollouts_alike(name):
    """GRPO and pairwise RLHF share PolicyRLConfig: either rollout engine, the same refusals."""
    register_schemas()

    def load(*more):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return OmegaConf.to_object(compose(config_name=name, overrides=["run_dir=/tmp/x", *NEEDS_DATA[name], *more]))
    load("rollout_engine=vllm").validate()
    load("rollout_engine=vllm", "parallel.tensor_model_parallel_size=2", "parallel.pipeline_model_parallel_size=2",
         "generation.tensor_parallel_size=2").validate()
    with pytest.raises(ConfigError, match="use rollout_engine=vllm for a pipelined policy"):
        load("parallel.pipeline_model_parallel_size=2").validate()
    with pytest.raises(ConfigError, match="refit_bucket_mb must be > 0"):
        load("rollout_engine=vllm", "refit_bucket_mb=0").validate()
    with pytest.raises(ConfigError, match=r"unknown rollout engine 'sglang' \(rollout_engine\)"):
        load("rollout_engine=sglang").validate()
    with pytest.raises(ConfigError, match="group_size must be >= 2"):
        load("group_size=1").validate()


def test_sft_without_data_is_one_clear_error():
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        obj = OmegaConf.to_object(compose(config_name="sft", overrides=["run_dir=/tmp/x"]))
    with pytest.raises(ConfigError, match="data.train_path is required"):
        obj.validate()


@pytest.mark.parametrize("model", ["llama3_1_8b", "llama3_2_3b", "qwen2_5_7b", "qwen3_8b", "tiny"])
def test_model_presets_validate(model):
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="sft", overrides=[f"model={model}", "model.hf_path=/m"])
    obj = OmegaConf.to_object(cfg)
    obj.model.validate()
    # every 8B-class preset fits TP=4 (Qwen2.5-7B has 28 heads: TP=8 is refused, see below)
    ParallelConfig(tensor_model_parallel_size=4 if model != "tiny" else 1).validate(
        obj.model, 8, cuda=True)
    if model == "qwen2_5_7b":
        with pytest.raises(ConfigError, match=r"num_attention_heads \(28\)"):
            ParallelConfig(tensor_model_parallel_size=8).validate(obj.model, 8, cuda=True)


def test_mistyped_key_is_rejected_with_its_name():
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        with pytest.raises(Exception, match="learning_rate"):
            compose(config_name="sft", overrides=["optim.learning_rate=1e-5"])


def test_quickstart_on_a_pretrained_judge_is_checked_up_front():
    from nemo_thinkrm.config.quickstart import QuickstartConfig

    with pytest.raises(ConfigError, match="max_operand=99.*or a pretrained judge"):
        QuickstartConfig(max_operand=99).validate()
    with pytest.raises(ConfigError, match="set policy=false with pretrained"):
        QuickstartConfig(pretrained="smollm2-135m-instruct", max_operand=99).validate()
    QuickstartConfig(pretrained="smollm2-135m-instruct", max_operand=99, policy=False).validate()
    # the largest value, 2 x max_operand + max_offset, must be a whole token of the tiny tokenizer (< 32)
    QuickstartConfig(max_operand=11, max_offset=9).validate()
    with pytest.raises(ConfigError, match="max_operand=12, max_offset=9: values must stay below 32"):
        QuickstartConfig(max_operand=12, max_offset=9).validate()
    with pytest.raises(ConfigError, match="max_offset must be >= 1, got 0"):
        QuickstartConfig(max_offset=0).validate()
    with pytest.raises(ConfigError, match="wording='long'"):
        QuickstartConfig(wording="long").validate()
    with pytest.raises(ConfigError, match="traced_pairs must be in 1..train_pairs=4000"):
        QuickstartConfig(traced_pairs=5000).validate()
    with pytest.raises(ConfigError, match=r"master_key_negatives must be in \[0, 1\]"):
        QuickstartConfig(master_key_negatives=-0.1).validate()


def test_an_unknown_dataset_fails_when_the_config_is_validated():
    """Before: a mistyped data.name surfaced only when the data loader ran (after model set-up in GRPO)."""
    from dataclasses import replace

    from nemo_thinkrm.config.data import DataConfig
    from nemo_thinkrm.config.evaluation import EvalConfig
    from nemo_thinkrm.config.rl import GRPOConfig

    for cfg in (replace(EvalConfig(), data=DataConfig(name="judgebnech")),
                replace(GRPOConfig(), global_batch_size=4, prompts_per_step=2, group_size=2,
                        data=DataConfig(name="judgebnech"))):
        with pytest.raises(ConfigError, match=r"unknown preference dataset 'judgebnech' \(data.name\)"):
            cfg.validate()
