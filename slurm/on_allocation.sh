#!/bin/bash
# torchrun on every node of the current Slurm allocation: `on_allocation.sh -m nemo_thinkrm STAGE ...`.
# slurm/thinkrm.sbatch runs one stage with it; `thinkrm self-train` runs each training stage with it
# (launch.sft="bash slurm/on_allocation.sh") from the one process that drives the rounds.
#
# One srun task per node starts torchrun with one process per GPU; the rendezvous endpoint is the
# first node of the allocation. No GPUs (slurm/local_cluster.sh): GPUS_PER_NODE=0, one process per task.
set -euo pipefail

GPUS_PER_NODE=${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-8}}
CPU_STEP=()
if [ "$GPUS_PER_NODE" -gt 0 ]; then
  NPROC_PER_NODE=${NPROC_PER_NODE:-$GPUS_PER_NODE}
else  # no GPUs: one process per task of the allocation, all of the node's CPUs to the launcher
  NPROC_PER_NODE=${NPROC_PER_NODE:-${SLURM_NTASKS_PER_NODE:-1}}
  CPU_STEP=(--cpus-per-task="${SLURM_CPUS_ON_NODE:-1}")
fi
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=${MASTER_PORT:-$((29500 + SLURM_JOB_ID % 10000))}  # jobs sharing a node do not collide
THINKRM_PYTHON=${THINKRM_PYTHON:-python}

export NCCL_ASYNC_ERROR_HANDLING=1 TORCH_NCCL_ASYNC_ERROR_HANDLING=1
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} HF_DATASETS_OFFLINE=${HF_DATASETS_OFFLINE:-1}
export CUDA_DEVICE_MAX_CONNECTIONS=1   # megatron's TP comm/compute overlap needs it

echo "$* on $SLURM_NNODES node(s) x $NPROC_PER_NODE process(es)" \
     "($GPUS_PER_NODE GPU(s) per node), rdzv $MASTER_ADDR:$MASTER_PORT, restart ${SLURM_RESTART_COUNT:-0}"
# one launcher task per node, whatever the allocation's tasks per node
srun --kill-on-bad-exit=1 --nodes="$SLURM_NNODES" --ntasks="$SLURM_NNODES" --ntasks-per-node=1 "${CPU_STEP[@]}" \
    "$THINKRM_PYTHON" -m torch.distributed.run \
    --nnodes="$SLURM_NNODES" --nproc-per-node="$NPROC_PER_NODE" \
    --rdzv-id="$SLURM_JOB_ID" --rdzv-backend=c10d --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" \
    "$@"
