#!/usr/bin/env python
"""How fast GRPO learns: ``thinkrm grpo`` against TRL's ``GRPOTrainer``, side by side in one run.

Both start from the same warm-up SFT judge (the quickstart's task, teacher and SFT stage, with
``--traced-pairs`` traced pairs so that something is left to learn) and see the same prompts in the
same order: ours chooses them (``trainers/policy.choose_prompts``), TRL is given that order with its
shuffling off. Same group size, prompts per step, mini-batches (two optimizer steps per rollout
batch), learning rate, schedule and Adam betas, KL coefficient (k3 estimator in both), clip range,
token-mean loss (TRL's ``loss_type="dapo"``), group-std advantage scaling, sampling temperature and
completion length. Ours runs at its recipe's defaults (``conf/tiny_grpo.yaml``); TRL is set to them.

Reported per logged step: each trainer's own mean train reward, and held-out accuracy — one greedy
verdict per held-out pair, from the same 🤗 generation and verdict rules for both (our checkpoints
are converted to 🤗 first). TRL is the peer, installed for this bench only; its dependencies are ours:

    .venv/bin/pip install --no-deps trl==1.16.0
    .venv/bin/python bench/grpo_learning.py [--steps 20] [--eval-every 5] [--out bench_runs/grpo_learning]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def compose(config_name: str, overrides: list[str]):
    """A stage's config as ``thinkrm`` composes it (Hydra + the registered schemas), as an object."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from omegaconf import OmegaConf

    from nemo_thinkrm.config.registry import register_schemas

    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=overrides)
    return OmegaConf.to_object(cfg)


def warm_start(root: Path, traced_pairs: int, sft_iters: int, seed: int):
    """The quickstart's task and warm-up SFT judge (skipped where already done)."""
    from nemo_thinkrm.examples.quickstart import Pipeline, build_task, warm_up

    qcfg = compose("quickstart", [f"run_dir={root}", f"traced_pairs={traced_pairs}", f"sft_iters={sft_iters}",
                                  "policy=false", f"seed={seed}"])
    p = Pipeline(qcfg, root)
    build_task(p)
    warm_up(p)
    return qcfg


def held_out_prompts(qcfg, tokenizer, limit: int):
    from nemo_thinkrm.data.preference import load_preference_data
    from nemo_thinkrm.genrm import load_template
    from nemo_thinkrm.genrm.prompts import build_prompts
    from nemo_thinkrm.models.tokenizer import chat_renderer

    data = compose("tiny_eval", ["data=generic", f"data.path={Path(qcfg.run_dir) / 'data' / 'heldout.jsonl'}",
                                 f"data.limit={limit}", "model.hf_path=unused"]).data  # the quickstart's eval data
    records = load_preference_data(data.name, path=data.path, field_map=dict(data.field_map), limit=data.limit).records
    render, count = chat_renderer(tokenizer, qcfg.model.tokenizer.think_prefix)
    return build_prompts(records, load_template(qcfg.template), render, count, seed=qcfg.seed, swap="random")


def greedy_accuracy(model, tokenizer, prompts, mode: str, max_new_tokens: int, batch: int = 50) -> float:
    """Share of held-out pairs whose greedy verdict is right (invalid counts as wrong)."""
    import torch

    from nemo_thinkrm.genrm import parse_verdict, sample_accuracy

    was_training = model.training
    model.eval()
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    right = 0.0
    try:
        for i in range(0, len(prompts), batch):
            chunk = prompts[i:i + batch]
            enc = tokenizer([p.text for p in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                out = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            right += sum(sample_accuracy(parse_verdict(t, mode), p.label)[0] for t, p in zip(texts, chunk))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return right / len(prompts)


def load_hf(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path, dtype="float32"), AutoTokenizer.from_pretrained(path)


def grpo_overrides(args, qcfg, out: Path, start) -> list[str]:
    """The one GRPO setting both trainers run: ``conf/tiny_grpo.yaml`` with the quickstart's task and the
    bench's extra overrides (TRL reads the composed config; ours gets the same list on its command line)."""
    return [f"run_dir={out}", f"model.hf_path={start}", f"data.path={Path(qcfg.run_dir) / 'data' / 'train.jsonl'}",
            f"train_iters={args.steps}", f"template={qcfg.template}", f"seed={qcfg.seed}",
            f"generation.max_new_tokens={qcfg.judge_max_new_tokens}", *args.ours]


def run_ours(args, qcfg, out: Path, evaluate) -> dict:
    """``thinkrm grpo`` at the quickstart's settings, a checkpoint every ``--eval-every`` steps."""
    from nemo_thinkrm.checkpoint.convert import to_hf

    shutil.rmtree(out, ignore_errors=True)  # a fresh run: an old one here would be resumed
    cmd = [sys.executable, "-m", "nemo_thinkrm", "grpo", "--config-name", "tiny_grpo",
           *grpo_overrides(args, qcfg, out, Path(qcfg.run_dir) / "sft"),
           f"checkpoint.save_interval={args.eval_every}", "checkpoint.keep_last=1000"]
    t0 = time.time()
    with open(out.parent / "ours.log", "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.time() - t0
    if rc != 0:
        sys.exit(f"our GRPO run failed (exit {rc}); see {out.parent / 'ours.log'}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r.get("kind") == "train"]
    reward = {r["step"]: r["reward_mean"] for r in rows}
    # the steps' own work, as TRL's train_runtime counts it (no start-up, no checkpoint saves)
    work = sum(r[k] for r in rows for k in ("time_rollout_s", "time_score_s", "time_logprob_s", "time_update_s"))
    heldout = {}
    for ckpt in sorted((out / "checkpoints").glob("step_*")):
        step = int(ckpt.name.split("_")[1])
        hf = to_hf(ckpt, out.parent / "ours_hf" / ckpt.name, overwrite=True)
        model, tok = load_hf(hf)
        heldout[step] = evaluate(model, tok)
    return {"reward": reward, "heldout": heldout, "seconds": work, "wall_seconds": seconds}


def run_trl(args, qcfg, sft_hf: Path, out: Path, evaluate) -> dict:
    """TRL's GRPOTrainer on the prompts ours saw, in its order, at our recipe's settings."""
    import datasets
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from nemo_thinkrm.algorithms.rewards import binary
    from nemo_thinkrm.trainers.grpo import grpo_task
    from nemo_thinkrm.trainers.policy import choose_prompts

    rl = compose("tiny_grpo", grpo_overrides(args, qcfg, out, sft_hf))
    model, tok = load_hf(sft_hf)
    task = grpo_task(rl, tok, binary)
    P, G = rl.prompts_per_step, rl.group_size
    rows = []
    for step in range(1, args.steps + 1):
        for i in choose_prompts(len(task.ids), P, rl.seed, step):
            prompt = task.source.groups[i][0]
            rows.append({"prompt": prompt.text, "label": prompt.label})
    mode = task.source.template.mode

    def verdict_reward(prompts, completions, label, **_):
        return [binary(c, lab, mode=mode) for c, lab in zip(completions, label)]

    per_update = rl.global_batch_size
    updates = P * G // per_update                       # optimizer steps per rollout batch, as ours
    heldout, t_eval = {}, [0.0]

    class Heldout(TrainerCallback):
        def on_step_end(self, targs, state, control, **kw):
            if state.global_step % (args.eval_every * updates) == 0:
                t = time.time()
                heldout[state.global_step // updates] = evaluate(kw["model"], tok)
                t_eval[0] += time.time() - t

    o = rl.optim
    cfg = GRPOConfig(
        output_dir=str(out), use_cpu=True, bf16=False, report_to=[], save_strategy="no", seed=rl.seed,
        max_steps=args.steps * updates, per_device_train_batch_size=per_update, steps_per_generation=updates,
        num_generations=G, max_completion_length=rl.generation.max_new_tokens,
        temperature=rl.generation.temperature, top_p=1.0, shuffle_dataset=False,
        learning_rate=o.lr, lr_scheduler_type=o.schedule,  # the same names
        warmup_steps=int(o.warmup_fraction * args.steps * updates), weight_decay=o.weight_decay,  # as ours
        adam_beta1=o.adam_beta1, adam_beta2=o.adam_beta2, adam_epsilon=o.adam_eps, max_grad_norm=o.clip_grad,
        beta=rl.loss.kl_coef, epsilon=rl.loss.clip_eps, epsilon_high=rl.loss.clip_eps_high or rl.loss.clip_eps,
        loss_type="dapo", scale_rewards="group" if rl.scale_by_std else "none", num_iterations=rl.ppo_epochs,
        logging_steps=updates, disable_tqdm=True)
    trainer = GRPOTrainer(model=model, reward_funcs=[verdict_reward], args=cfg,
                          train_dataset=datasets.Dataset.from_list(rows), processing_class=tok, callbacks=[Heldout()])
    t0 = time.time()
    trainer.train()
    seconds = time.time() - t0 - t_eval[0]
    reward = {int(r["step"]) // updates: r["reward"] for r in trainer.state.log_history if "reward" in r}
    return {"reward": reward, "heldout": heldout, "seconds": seconds}


def table(steps: list[int], ours: dict, peer: dict) -> list[str]:
    def pct(x):
        return "—" if x is None else f"{100 * x:.1f} %"

    def num(x):
        return "—" if x is None else f"{x:.3f}"

    lines = ["| step | train reward, ours | train reward, TRL | held-out, ours | held-out, TRL |",
             "|---:|---:|---:|---:|---:|"]
    for s in steps:
        lines.append(f"| {s} | {num(ours['reward'].get(s))} | {num(peer['reward'].get(s))} "
                     f"| {pct(ours['heldout'].get(s))} | {pct(peer['heldout'].get(s))} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="RL steps (rollout batches) for each trainer")
    ap.add_argument("--eval-every", type=int, default=5, help="held-out accuracy every N steps")
    ap.add_argument("--traced-pairs", type=int, default=100, help="pairs the warm-up SFT sees traces of")
    ap.add_argument("--sft-iters", type=int, default=600, help="warm-up SFT steps (the quickstart's default)")
    ap.add_argument("--heldout", type=int, default=200, help="held-out pairs (greedy, one verdict each)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", default="bench_runs/grpo_learning")
    ap.add_argument("--skip-trl", action="store_true", help="our curve alone")
    ap.add_argument("ours", nargs="*", help="extra overrides for both, in our config's names (e.g. optim.lr=1e-4)")
    args = ap.parse_args()
    if not args.skip_trl:
        try:
            import trl
        except ImportError:
            sys.exit("TRL is the peer here: .venv/bin/pip install --no-deps trl==1.16.0 (or --skip-trl)")
        peer_version = trl.__version__
    from nemo_thinkrm.checkpoint.convert import to_hf

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    qcfg = warm_start(out / "start", args.traced_pairs, args.sft_iters, args.seed)
    sft_hf = to_hf(out / "start" / "sft", out / "sft_hf", overwrite=True)
    model, tok = load_hf(sft_hf)
    prompts = held_out_prompts(qcfg, tok, args.heldout)
    from nemo_thinkrm.genrm import load_template

    mode = load_template(qcfg.template).mode

    def evaluate(m, t) -> float:
        return greedy_accuracy(m, t, prompts, mode, qcfg.judge_max_new_tokens)

    start = evaluate(model, tok)
    print(f"warm start ready in {time.time() - t0:.0f} s: held-out greedy accuracy {100 * start:.1f} %", flush=True)
    ours = run_ours(args, qcfg, out / "ours", evaluate)
    peer = {"reward": {}, "heldout": {}, "seconds": None}
    if not args.skip_trl:
        peer = run_trl(args, qcfg, sft_hf, out / "trl", evaluate)
    for run in (ours, peer):
        run["heldout"][0] = start
    steps = sorted({0, *range(args.eval_every, args.steps + 1, args.eval_every), 1, args.steps})
    lines = table(steps, ours, peer)
    speed = f"ours {ours['seconds'] / args.steps:.1f} s/step"
    if peer["seconds"] is not None:
        speed += f", TRL {peer_version} {peer['seconds'] / args.steps:.1f} s/step " \
                 f"(TRL takes {peer['seconds'] / ours['seconds']:.2f}x our time)"
    lines += ["", f"{args.steps} steps from an SFT judge warmed up on {qcfg.traced_pairs} traced pairs; {speed} "
              "(the steps' own work: no start-up, checkpoint saves or held-out evaluation)"]
    print("\n".join(lines))
    (out / "results.json").write_text(json.dumps({"ours": ours, "trl": peer, "start": start, "args": vars(args)},
                                                 indent=1, default=str))
    (out / "table.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
