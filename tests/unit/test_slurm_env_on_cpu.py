"""How a process started by Slurm finds its rank (runtime/distributed.py): torchrun's variables win;
a bare multi-task srun step is refused with the fix; a single task, or the batch script itself,
runs as one process."""

import pytest

from nemo_thinkrm.config.errors import ConfigError
from nemo_thinkrm.runtime import distributed

SLURM_KEYS = ("RANK", "SLURM_PROCID", "SLURM_STEP_ID", "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SUBMITIT_EXECUTOR")


@pytest.fixture
def slurm_env(monkeypatch):
    for key in SLURM_KEYS:
        monkeypatch.delenv(key, raising=False)

    def set_env(**kv):
        for k, v in kv.items():
            monkeypatch.setenv(k, v)
    return set_env


def test_bare_srun_with_two_tasks_is_refused(slurm_env):
    slurm_env(SLURM_PROCID="1", SLURM_STEP_ID="0", SLURM_STEP_NUM_TASKS="2")
    with pytest.raises(ConfigError, match=r"task 1 of 2 Slurm tasks without torchrun.*slurm/thinkrm.sbatch"):
        distributed._slurm_tasks_to_env()


@pytest.mark.parametrize("env", [
    dict(RANK="0", SLURM_PROCID="0", SLURM_STEP_ID="0", SLURM_STEP_NUM_TASKS="2"),  # torchrun under srun
    dict(SLURM_PROCID="0", SLURM_STEP_ID="0", SLURM_STEP_NUM_TASKS="1"),  # srun -n 1
    dict(SLURM_PROCID="0", SLURM_NTASKS="2"),  # the batch script itself (no step)
])
def test_single_process_cases_pass(slurm_env, env):
    slurm_env(**env)
    distributed._slurm_tasks_to_env()
