#!/usr/bin/env bash
# Prepares, in the ignored .whl/ folder, what the GPU machine lacks for bench/gpu.py: it has Python 3.12,
# torch, transformers and accelerate, but not diffusers, torchao, the CLIP vocabulary's wheel
# (openai-clip) or importlib_metadata. Run here, where PyPI answers; bench/gpu.sh installs them there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
# diffusers as the project pins it here; torchao for the GPU machine's torch (2.11: torchao 0.17)
DIFFUSERS=$($PY -c "from importlib.metadata import version; print(version('diffusers'))")
WANTED=("diffusers==$DIFFUSERS" "torchao==${TORCHAO:-0.17.0}" "importlib_metadata==8.7.0" "zipp==3.23.0")
rm -rf .whl && mkdir -p .whl
for wanted in "${WANTED[@]}"; do
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    --platform any -d .whl "$wanted"
done
# openai-clip is published as a source archive only: built here into a pure-Python wheel
$PY -m pip wheel -q --no-deps -w .whl openai-clip==1.0.1
ls -la .whl
du -sh .whl
