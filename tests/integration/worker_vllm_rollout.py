"""Subprocess worker: a colocated vLLM CPU engine receives megatron weights in memory.

Usage: worker_vllm_rollout.py A_DIR B_DIR OUT.json [TP PP ENGINE_TP]   (under torchrun for >1 process)
Engine built from 🤗 model A; greedy tokens before and after ``load_weights_from`` of a
megatron model (layout TP × PP, the rest data-parallel) holding model B's weights, each checked
as 🤗 transformers' argmax under A / B. Every engine replica samples its share of the prompts and
the shares are gathered, as in ``thinkrm grpo``; rank 0 writes OUT.
"""

from __future__ import annotations

import json
import sys
import time

import torch
import transformers

PROMPTS = ["What is 3 + 4?", "Response A says", "the question answer response", "which is better", "12 - 5 ="]
NEW_TOKENS = 12


def argmax_gap(path: str, prompts: list[list[int]], outputs: list[list[int]]) -> float:
    """Largest (max log-prob − log-prob of the engine's token) over every generated position,
    under 🤗 transformers with the weights at ``path``: 0 when every greedy pick is 🤗's argmax.
    Robust to exact ties, unlike comparing decoded strings."""
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    worst = 0.0
    with torch.no_grad():
        for p, o in zip(prompts, outputs):
            logp = torch.log_softmax(model(torch.tensor([p + o])).logits[0].float(), -1)
            rows = logp[len(p) - 1:len(p) - 1 + len(o)]
            picked = rows.gather(-1, torch.tensor(o)[:, None])[:, 0]
            worst = max(worst, float((rows.max(-1).values - picked).max()))
    return worst


def main() -> None:
    import torch.distributed as dist

    from nemo_thinkrm.config.generation import GenerationConfig
    from nemo_thinkrm.config.model import TokenizerConfig
    from nemo_thinkrm.config.parallel import ParallelConfig
    from nemo_thinkrm.generation.interface import GenerationRequest
    from nemo_thinkrm.generation.vllm_engine import VLLMRolloutEngine
    from nemo_thinkrm.models.loading import load_hf_weights, model_config_for_hf_dir
    from nemo_thinkrm.models.tokenizer import load_tokenizer
    from nemo_thinkrm.runtime.distributed import init_distributed
    from nemo_thinkrm.trainers.policy import replica_share
    from nemo_thinkrm.training.engine import build_engine_model, unwrap

    a_dir, b_dir, out = sys.argv[1:4]
    tp, pp, engine_tp = (int(x) for x in (sys.argv[4:7] or ["1", "1", "1"]))
    parallel = ParallelConfig(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    cfg_b = model_config_for_hf_dir(b_dir)
    init_distributed(parallel, cfg_b, seed=0)
    tok = load_tokenizer(TokenizerConfig(name=a_dir))
    engine = VLLMRolloutEngine(a_dir, tok, GenerationConfig(temperature=0.0, max_new_tokens=NEW_TOKENS,
                                                            tensor_parallel_size=engine_tp), [], None,
                               max_model_len=256, dtype="float32", bucket_mb=0.01)
    reqs = [GenerationRequest(f"r{i}", p, seed=i) for i, p in enumerate(PROMPTS)]
    n, index = engine.replicas()
    mine = replica_share(list(range(len(reqs))), n, index)

    def sample_all():
        shares = engine.gather_shares(engine.generate([reqs[i] for i in mine]))
        order = [i for k in range(n) for i in replica_share(list(range(len(reqs))), n, k)]
        flat = [o for share in shares for o in share]
        return [flat[order.index(i)] for i in range(len(reqs))]

    before = sample_all()
    chunks = build_engine_model(cfg_b, parallel, wrap_ddp=False)
    load_hf_weights(unwrap(chunks[0]), cfg_b, b_dir)
    t0 = time.time()
    n_loaded = engine.load_weights_from(unwrap(chunks[0]), cfg_b)
    refit_s = time.time() - t0
    after = sample_all()
    if dist.get_rank() == 0:
        prompt_ids = [s.prompt_ids for s in before]
        b_ids, a_ids = [s.output_ids for s in before], [s.output_ids for s in after]
        json.dump({"gap_before_vs_a": argmax_gap(a_dir, prompt_ids, b_ids),
                   "gap_after_vs_b": argmax_gap(b_dir, prompt_ids, a_ids),
                   "gap_after_vs_a": argmax_gap(a_dir, prompt_ids, a_ids),
                   "after_ids": a_ids, "ids": [s.id for s in after], "replicas": n, "refit_s": refit_s,
                   "lengths": [len(x) for x in b_ids + a_ids], "n_loaded": n_loaded,
                   "prompt_ids_match": prompt_ids == [tok(p, add_special_tokens=False)["input_ids"]
                                                      for p in PROMPTS]},
                  open(out, "w"))
    if dist.get_world_size() > 1:
        dist.barrier()


if __name__ == "__main__":
    main()
