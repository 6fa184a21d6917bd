#!/usr/bin/env bash
# The GPU smoke run (tools/gpu_smoke.py): install the carried wheels, then run the plan on one GPU.
#   tools/gpu_smoke.sh --fetch-wheels   here (PyPI reachable): download what the device machine lacks into .whl/
#   tools/gpu_smoke.sh --dry-run        here: check .whl/ and the tree size, rehearse every step on the CPU
#   tools/gpu_smoke.sh                  on the device machine: writes $OUT/gpu_smoke.json (device tool: $OUT)
set -euo pipefail
cd "$(dirname "$0")/.."
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux2014_x86_64 --platform any"
case "${1:-}" in
  --fetch-wheels)
    PIP=${PIP:-.venv/bin/pip}
    mkdir -p .whl
    # the device has Python 3.12 + CUDA torch; megatron-core ships a C extension, so the cp312 wheel
    $PIP download -q --no-deps --only-binary=:all: --python-version 3.12 $PLATFORMS -d .whl \
        megatron-core==0.16.1 hydra-core==1.3.8 omegaconf==2.3.0
    $PIP wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3   # sdist only on PyPI; pure Python
    ls -la .whl ;;
  --dry-run)
    PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
    exec "$PY" tools/gpu_smoke.py --dry-run --out "${OUT:-gpu_smoke_out}" ;;
  "")
    python3 -m pip install -q --no-index --no-deps --target .gpu_deps .whl/*.whl
    exec python3 tools/gpu_smoke.py --out "${OUT:-gpu_smoke_out}" ;;
  *) echo "usage: tools/gpu_smoke.sh [--fetch-wheels | --dry-run]" >&2; exit 2 ;;
esac
