#!/usr/bin/env bash
# Install (or reuse) .venv, then run the whole test suite. pytest's exit code 5 ("no tests
# collected") is a failure here, never a silent pass.
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh || exit $?
.venv/bin/python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
