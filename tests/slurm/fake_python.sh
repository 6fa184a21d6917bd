#!/bin/bash
# THINKRM_PYTHON for the GPU-node test: vLLM's server becomes tests/slurm/fake_judge_server.py, anything else
# (the engine flags from nemo_thinkrm.generation.vllm_args) runs on the real interpreter, REAL_PYTHON.
if [[ " $* " == *" vllm.entrypoints.openai.api_server "* ]]; then
  shift 2
  exec "$REAL_PYTHON" "$(dirname "$0")/fake_judge_server.py" "$@"
fi
exec "$REAL_PYTHON" "$@"
