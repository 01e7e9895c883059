#!/usr/bin/env bash
# The GPU proof as one command, for the GPU machine (device tool: carry .whl, made by bench/gpu_wheels.sh):
#   run(command="bash bench/gpu.sh", carry=[".whl"], timeout_s=600)
# installs the wheels beside the machine's torch, then runs bench/gpu.py, writing gpu.json and gpu.md to
# $OUT (or bench/out). Extra arguments go to bench/gpu.py.
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
out="${OUT:-bench/out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$out/nvidia-smi.txt"
python3 -c "import torch, diffusers, torchao; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'torchao', torchao.__version__)"
python3 bench/gpu.py --out "$out" "$@" 2>&1 | tee "$out/gpu.log"
