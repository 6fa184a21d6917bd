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


def test_a_submitit_task_picks_its_own_gpu(slurm_env, monkeypatch):
    """Issue 27 B13: in a submitit job of 4 tasks per node, task 3 used to call torch.cuda.set_device(0)
    because LOCAL_RANK was exported from the Slurm variables only after set_device."""
    from nemo_thinkrm.config.parallel import ParallelConfig

    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE"):
        monkeypatch.setenv(key, "-")  # recorded, so what submitit exports below is undone after the test
        monkeypatch.delenv(key)
    slurm_env(SUBMITIT_EXECUTOR="slurm", SLURM_PROCID="3", SLURM_LOCALID="3", SLURM_STEP_ID="0",
              SLURM_STEP_NUM_TASKS="4", SLURM_NTASKS="4", SLURM_JOB_NUM_NODES="1", SLURM_JOB_ID="42",
              SLURM_JOB_NODELIST="node1", SLURM_NODEID="0")
    devices = []

    class Stop(Exception):
        pass

    def init_process_group(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(distributed, "apply_cpu_compat", lambda: False)  # it stubs torch.cuda.set_device on CPU
    monkeypatch.setattr(distributed.torch.cuda, "set_device", devices.append)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", init_process_group)
    with pytest.raises(Stop):
        distributed.init_distributed(ParallelConfig(backend="nccl"))
    assert devices == [3]
