#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment at .venv and install the project into it.
# Idempotent: a second run returns at once unless the packaging files changed. Needs only a
# package index (torch and torchvision come from this machine's disk).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# The install is redone only when the packaging files change (a stamp in .venv records them).
stamp=.venv/.committee-tasks-installed
want=$(cat setup.cfg pyproject.toml tools/setup_env.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
# torch/torchvision pinned to the pair this machine ships on disk (a CUDA build; pip here is
# capped at these versions). Any recent matching pair works for the classification task.
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1"
# setuptools/wheel for the editable install without build isolation (no second download of them).
.venv/bin/python -m pip install -q --disable-pip-version-check "setuptools>=64" wheel
# The editable build's warnings are noise on success; on failure the whole log is shown.
log=$(mktemp)
if ! .venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation -e ".[test,video,segmentation]" >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
echo "$want" > "$stamp"
