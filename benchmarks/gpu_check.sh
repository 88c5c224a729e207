#!/usr/bin/env bash
# The prepared GPU check, for whoever has a GPU: a few minutes on one. It installs nothing beyond
# the README's set-up. benchmarks/gpu_check.py checks the CUDA paths (AMP, channels-last and
# channels-last-3d, pinned memory, CUDA-event timing) of a classification, a video and a
# segmentation member at real sizes against the CPU path, the evaluation loop against bare
# forward passes, and a cascade's realized vs MACs-predicted speedup at batch 256; then
# benchmarks/torchrun_check.sh, a 2-rank torchrun evaluation against one process (a rank per GPU
# with 2 GPUs, both ranks on one GPU with one, 2 CPU processes with --device cpu).
#
#   bash benchmarks/gpu_check.sh                       # on a GPU machine
#   bash benchmarks/gpu_check.sh --device cpu --small  # the same steps on the CPU (the tests run this)
#
# PYTHON picks the interpreter (default: the README's .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
status=0
$py benchmarks/gpu_check.py "$@" || status=$?
bash benchmarks/torchrun_check.sh "$@" || status=$?
exit $status
