"""2 gloo processes, one model-parallel layout (``tp2`` or ``pp2``), weights from a 🤗 dir:

* refit: ``generation/refit.iter_hf_weights`` with tiny buckets must give, on every rank, every
  🤗 tensor of the checkpoint exactly (names, shapes, values);
* ``tp2`` only: the megatron sampler's outputs (KV-cached and full recompute, greedy and seeded),
  which must be identical on both TP ranks.

Usage: worker_rollout_layouts.py LAYOUT HF_DIR OUT.json (rank 0 writes OUT)
"""

from __future__ import annotations

import json
import sys

import transformers


def main() -> None:
    import torch.distributed as dist
    from safetensors.torch import load_file

    from nemo_thinkrm.config.generation import GenerationConfig
    from nemo_thinkrm.config.parallel import ParallelConfig
    from nemo_thinkrm.generation.interface import GenerationRequest
    from nemo_thinkrm.generation.megatron_sampler import MegatronSampler
    from nemo_thinkrm.generation.refit import iter_hf_weights, plan_buckets
    from nemo_thinkrm.models.hf_mapping import exported_rules
    from nemo_thinkrm.models.loading import load_hf_weights, model_config_for_hf_dir
    from nemo_thinkrm.models.tokenizer import tiny_bpe_dir
    from nemo_thinkrm.runtime.distributed import all_gather_objects, init_distributed
    from nemo_thinkrm.training.engine import build_engine_model, unwrap

    layout, hf_dir, out = sys.argv[1:4]
    parallel = ParallelConfig(tensor_model_parallel_size=2 if layout == "tp2" else 1,
                              pipeline_model_parallel_size=2 if layout == "pp2" else 1)
    cfg = model_config_for_hf_dir(hf_dir)
    init_distributed(parallel, cfg, seed=0)
    chunks = build_engine_model(cfg, parallel, wrap_ddp=False)
    module = unwrap(chunks[0])
    load_hf_weights(module, cfg, hf_dir)

    from megatron.core import parallel_state as ps

    ref = {}
    for f in sorted(__import__("pathlib").Path(hf_dir).glob("*.safetensors")):
        ref.update(load_file(str(f)))
    bucket_mb = 0.02
    params = dict(module.named_parameters())
    pairs = exported_rules(module, cfg, ps.get_pipeline_model_parallel_rank(), parallel.pipeline_model_parallel_size)
    n_buckets = len(plan_buckets(params, pairs, parallel.tensor_model_parallel_size, int(bucket_mb * 2 ** 20)))
    gaps = {}
    for name, t in iter_hf_weights(module, cfg, bucket_mb=bucket_mb):
        r = ref[name]
        gaps[name] = float((t.float() - r.float()).abs().max()) if t.shape == r.shape else float("inf")
    result = {"refit": all_gather_objects({"names": sorted(gaps), "max_gap": max(gaps.values()),
                                           "buckets": n_buckets}),
              "checkpoint_names": sorted(ref)}
    if layout == "tp2":
        tok = transformers.AutoTokenizer.from_pretrained(tiny_bpe_dir(cfg.vocab_size))
        prompts = ["What is 3 + 4? The answer is", "a", "the question answer response " * 4, "which is better"]
        reqs = [GenerationRequest(f"r{i}", p, seed=11 + i) for i, p in enumerate(prompts)]
        runs = {}
        for kv in (True, False):
            for temp in (0.0, 1.0):
                gen = GenerationConfig(temperature=temp, max_new_tokens=12, batch_size=3, kv_cache=kv)
                outs = MegatronSampler(chunks, tok, gen, []).generate(reqs)
                runs[f"kv={kv},t={temp}"] = [o.output_ids for o in outs]
        result["sampler"] = all_gather_objects(runs)
        result["prompt_ids"] = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    if dist.get_rank() == 0:
        json.dump(result, open(out, "w"))
    dist.barrier()


if __name__ == "__main__":
    main()
