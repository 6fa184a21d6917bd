#!/usr/bin/env python
"""SFT throughput on CPU: ``thinkrm sft`` (megatron, with and without packing) vs a plain 🤗
transformers training loop on the same tiny model and the same variable-length data, measured
side by side in one run and printed as ratios; padding waste with and without packing; model
FLOP/s and MFU against this machine's fp32 matmul peak, measured in the same run.

    .venv/bin/python bench/sft_throughput.py [--samples 256] [--steps 20] [--rounds 3] [--shapes default,wide]
                                             [--micro-batch 4] [--model DIR|NAME]

Shapes: ``default`` (2 layers, hidden 128, seq 1024) and ``wide`` (4 layers, hidden 256, seq 2048);
``--model`` adds a real one: a 🤗 directory or a ``thinkrm models`` name (e.g. smollm2-135m-instruct),
with its own tokenizer, seq 1024, 2 rows a step (a real model is slow on CPU: ~100-150 tokens/s).
Tokens/s counts real (non-padding) tokens through forward + backward + optimizer step,
excluding the first 3 steps (warm-up). The 🤗 loop and the packed run alternate for ``--rounds``
rounds and each reports its best round (noise on a shared machine only ever adds time, as
``timeit`` reasons); every round's ratio is printed too. Model FLOPs are counted the same way for every run, on
the samples' real tokens (``nemo_thinkrm/training/flops.py``: 6·N per token plus causal attention
within each sample), so MFU compares useful work, not what padding or masking costs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_data(path: Path, n: int, seed: int = 0) -> None:
    """Judge-style samples with log-normal trace lengths (~40 to ~900 tokens), like CoT SFT data."""
    from nemo_thinkrm.data.synthetic import judge_messages, make_arithmetic_pairs

    rng = random.Random(seed)
    words = "compute check response value right wrong so the answer is better because step first then".split()
    rows = []
    for p in make_arithmetic_pairs(n, seed=seed):
        extra = " ".join(rng.choice(words) for _ in range(int(rng.lognormvariate(4.0, 0.9))))
        rows.append({"messages": judge_messages(p) + [{"role": "assistant", "content": extra + " " + p.trace}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def ours(data: Path, hf_dir: Path, steps: int, packing: bool, seq: int, gbs: int, work: Path,
         micro_batch: int = 4, extra: tuple = ()) -> dict:
    run_dir = work / f"ours_packing_{packing}"
    cmd = [sys.executable, "-m", "nemo_thinkrm", "sft", "--config-name", "tiny_sft", f"run_dir={run_dir}",
           f"data.train_path={data}", "data.val_fraction=0", f"data.packing={str(packing).lower()}",
           f"model.hf_path={hf_dir}", f"train_iters={steps}", f"seq_length={seq}", f"global_batch_size={gbs}",
           f"micro_batch_size={micro_batch}", "checkpoint.save_interval=0", "optim.warmup_fraction=0", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"][3:]
    log = proc.stdout + proc.stderr
    waste = float(log.split("padding ")[1].split("%")[0]) / 100
    return {"tokens_per_s": statistics.mean(r["tokens_per_s"] for r in train), "padding_waste": waste,
            "flops_per_s": statistics.mean(r["model_flops_per_s"] for r in train)}


def hf_loop(data: Path, hf_dir: Path, steps: int, batch: int, seq: int, own_tokenizer: bool = False,
            lr: float = 3e-3) -> dict:
    """The 🤗 baseline: AdamW, batches padded to their longest sample (DataCollatorForSeq2Seq-style)."""
    import torch
    import transformers

    from nemo_thinkrm.config.model import TokenizerConfig
    from nemo_thinkrm.data.sft import load_sft_records, tokenize_record
    from nemo_thinkrm.models.tokenizer import load_tokenizer

    tok = load_tokenizer(TokenizerConfig(name=str(hf_dir)) if own_tokenizer else TokenizerConfig())
    samples = [tokenize_record(r, tok, True) for r in load_sft_records(str(data)).records]
    samples = [s for s in samples if len(s.input_ids) <= seq]
    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(0)
    from nemo_thinkrm.models.loading import model_config_for_hf_dir
    from nemo_thinkrm.training.flops import training_flops

    cfg = model_config_for_hf_dir(hf_dir)
    times, tokens, flops, real, total = [], [], [], 0, 0
    for step in range(steps):
        idx = torch.randint(0, len(samples), (batch,), generator=g).tolist()
        group = [samples[i] for i in idx]
        width = max(len(s.input_ids) for s in group)
        ids = torch.full((batch, width), tok.pad_token_id)
        labels = torch.full((batch, width), -100)
        attn = torch.zeros(batch, width, dtype=torch.long)
        for k, s in enumerate(group):
            n = len(s.input_ids)
            ids[k, :n] = torch.tensor(s.input_ids)
            labels[k, :n] = torch.where(torch.tensor(s.loss_mask) == 1, torch.tensor(s.input_ids), -100)
            attn[k, :n] = 1
        t0 = time.time()
        loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        times.append(time.time() - t0)
        tokens.append(int(attn.sum()))
        flops.append(training_flops(cfg, [len(s.input_ids) for s in group]))
        real, total = real + int(attn.sum()), total + attn.numel()
    return {"tokens_per_s": sum(tokens[3:]) / sum(times[3:]), "padding_waste": 1 - real / total,
            "flops_per_s": sum(flops[3:]) / sum(times[3:])}


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """This machine's fp32 FLOP/s on a large square GEMM (best of ``repeats``): the MFU denominator."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


SHAPES = {"default": dict(layers=2, hidden=128, ffn=256, seq=1024, heads=4, kv=2),
          "wide": dict(layers=4, hidden=256, ffn=512, seq=2048, heads=4, kv=2)}


def run_shape(name: str, shape: dict, args, work: Path, peak: float) -> None:
    from nemo_thinkrm.config.model import TokenizerConfig
    from nemo_thinkrm.examples.tiny_hf import save_tiny_hf_checkpoint, tiny_model_config
    from nemo_thinkrm.models.tokenizer import load_tokenizer

    work = work / name
    work.mkdir()
    data = work / "sft.jsonl"
    real = "model" in shape
    make_data(data, args.samples)
    if real:  # a real model: its own tokenizer, a fine-tuning learning rate
        hf_dir, gbs, micro, steps = shape["model"], 2, 1, shape["steps"]
        extra, lr, what = (("model.tokenizer.name=null", "optim.lr=2e-5", "optim.min_lr=2e-6"), 2e-5,
                            f"real model {hf_dir.name}")
    else:
        hf_dir = save_tiny_hf_checkpoint(
            tiny_model_config("llama", num_layers=shape["layers"], hidden_size=shape["hidden"], ffn=shape["ffn"],
                              heads=shape["heads"], kv_heads=shape["kv"], init_std=0.02, max_positions=4096),
            work / "hf", tokenizer=load_tokenizer(TokenizerConfig()))
        gbs, micro, steps, extra, lr = 8, args.micro_batch, args.steps, (), 3e-3
        what = f"tiny Llama ({shape['layers']} layers, hidden {shape['hidden']})"
    seq = shape["seq"]
    hfs, packs = [], []
    for r in range(args.rounds):  # alternate, so a slow spell of the machine hits both
        hfs.append(hf_loop(data, hf_dir, steps, gbs, seq, own_tokenizer=real, lr=lr))
        packs.append(ours(data, hf_dir, steps, True, seq, gbs, work / f"round{r}", micro, extra))
    hf, packed = (max(runs, key=lambda x: x["tokens_per_s"]) for runs in (hfs, packs))
    per_round = ", ".join(f"{p['tokens_per_s'] / h['tokens_per_s']:.2f}" for p, h in zip(packs, hfs))
    padded = ours(data, hf_dir, steps, False, seq, gbs, work, micro, extra)
    args = argparse.Namespace(**{**vars(args), "steps": steps, "micro_batch": micro})
    print(f"\n[{name}] {what}, {args.samples} "
          f"variable-length samples, seq {seq}, {gbs} rows per step in micro-batches of {args.micro_batch}, "
          f"{args.steps} steps (first 3 excluded), best of {args.rounds} "
          f"alternating rounds (packed / 🤗 per round: "
          f"{per_round})")
    print(f"{'run':<38}{'tokens/s':>10}{'padding':>10}{'vs 🤗':>8}{'GFLOP/s':>10}{'MFU':>7}")
    for label, r in (("🤗 transformers loop (dynamic padding)", hf), ("thinkrm sft, packing", packed),
                     ("thinkrm sft, no packing (pad to seq)", padded)):
        print(f"{label:<38}{r['tokens_per_s']:>10.0f}{100 * r['padding_waste']:>9.1f}%"
              f"{r['tokens_per_s'] / hf['tokens_per_s']:>8.2f}{r['flops_per_s'] / 1e9:>10.1f}"
              f"{100 * r['flops_per_s'] / peak:>6.1f}%")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shapes", default="default,wide")
    ap.add_argument("--micro-batch", type=int, default=4,
                    help="thinkrm's micro_batch_size (8 = one forward per step, as the 🤗 loop does)")
    ap.add_argument("--model", help="also a real model: a 🤗 directory or a thinkrm models name")
    ap.add_argument("--model-steps", type=int, default=6, help="steps of the real model's runs (first 3 excluded)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO))
    peak = matmul_peak()
    print(f"SFT throughput on CPU ({os.cpu_count()} cores); fp32 matmul peak (2048³ GEMM, this run): "
          f"{peak / 1e9:.1f} GFLOP/s")
    shapes = {name: SHAPES[name] for name in filter(None, args.shapes.split(","))}
    if args.model:
        from nemo_thinkrm.checkpoint.pretrained import model_dir

        shapes["real"] = {"model": model_dir(args.model), "seq": 1024, "steps": args.model_steps}
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape in shapes.items():
            run_shape(name, shape, args, Path(tmp), peak)


if __name__ == "__main__":
    main()
