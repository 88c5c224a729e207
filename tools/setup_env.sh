#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment at .venv and install the project into it.
# Idempotent: a second run only checks what is installed. Works offline given a package index.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# torch/torchvision pinned to the pair this machine ships on disk (a CUDA build; pip here is
# capped at these versions). Any recent matching pair works for the classification task.
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1"
# setuptools/wheel for the editable install without build isolation (no second download of them).
.venv/bin/python -m pip install -q --disable-pip-version-check "setuptools>=64" wheel
.venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation -e ".[test]"
