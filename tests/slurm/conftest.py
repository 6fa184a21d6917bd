"""The Slurm tier's cluster: the one ``.ci/run`` started (``SLURM_CONF``), or one this session starts
with ``slurm/local_cluster.sh`` and stops at the end; skipped, with its reason, where Slurm is not
installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, clean_env

SCRIPT = REPO / "slurm" / "local_cluster.sh"


def _responds(env: dict) -> bool:
    try:
        return subprocess.run(["sinfo", "-h"], env=env, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def cluster_env():
    if shutil.which("sbatch") is None or not Path("/usr/sbin/slurmctld").exists() or shutil.which(
            "munged") is None and not Path("/usr/sbin/munged").exists():
        pytest.skip("Slurm tier skipped: slurm-wlm and munge are not installed "
                    "(apt-get install -y slurm-wlm munge; .ci/run installs them when root)")
    env = clean_env(GPUS_PER_NODE="0", THINKRM_PYTHON=sys.executable,
                    THINKRM_SLURM_FAKE_GPUS=os.environ.get("THINKRM_SLURM_FAKE_GPUS", "4"))
    env.pop("SLURM_CONF", None)
    conf = os.environ.get("SLURM_CONF") or subprocess.run(["bash", str(SCRIPT), "conf"], capture_output=True,
                                                          text=True, check=True).stdout.strip()
    env["SLURM_CONF"] = conf
    started = False
    if not _responds(env):
        proc = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            pytest.fail(f"could not start the local Slurm cluster: {proc.stderr.strip()}")
        started = True
    for key in [k for k in env if k.startswith("SLURM_") and k != "SLURM_CONF"]:
        env.pop(key)  # a test run inside a Slurm job must not hand its own job's variables to sbatch
    yield env
    if started:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=60)
