"""``runtime/launch.run_local_world``: a worker's one-line error is the last thing the user reads."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.helpers import REPO, clean_env


def test_first_failure_ends_the_world_with_its_own_exit_code_and_no_launcher_trace():
    code = ("import sys; from nemo_thinkrm.runtime.launch import run_local_world; "
            "sys.exit(run_local_world('tests.unit.runtime.worker_launch', [], 2))")
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=clean_env(),
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: rank 0 refuses"
    assert "Traceback" not in proc.stderr and "ChildFailedError" not in proc.stderr
    assert time.time() - t0 < 60  # rank 1 was stopped, not left to its collective's timeout
