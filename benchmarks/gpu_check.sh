#!/usr/bin/env bash
# The prepared GPU check, for whoever has a GPU: a few minutes on one. It installs nothing beyond
# the README's set-up. benchmarks/gpu_check.py checks the CUDA paths (AMP, channels-last and
# channels-last-3d, pinned memory, CUDA-event timing) of a classification, a video and a
# segmentation member at real sizes against the CPU path, the evaluation loop against bare
# forward passes, and a cascade's realized vs MACs-predicted speedup at batch 256; then, where 2
# GPUs are present (with --device cpu: 2 CPU processes), a 2-rank torchrun evaluation against one
# process. One summary at the end.
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

gpus=$($py -c "import torch; print(torch.cuda.device_count())")
if [[ " $* " == *" --device cpu "* ]]; then
    what="2-rank torchrun on the CPU (gloo)"  # the same steps as on 2 GPUs, so the tests run them
elif [ "$gpus" -lt 2 ]; then
    echo "2-GPU torchrun: skipped ($gpus CUDA device(s); it needs 2)"
    exit $status
else
    what="2-GPU torchrun"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=(--dataset digits --models digits_cnn_s,digits_cnn_m,digits_cnn_l --cascade digits_cnn_s,digits_cnn_l
      --thresholds 0.9 --measure-samples 0 --no-progress)
COMMITTEE_TASKS_CACHE=$tmp/one $py tools/eval.py "${args[@]}" --json "$tmp/one.json" > "$tmp/one.log" 2>&1 \
    || { tail -30 "$tmp/one.log"; exit 1; }
start=$(date +%s.%N)
COMMITTEE_TASKS_CACHE=$tmp/two $py -m torch.distributed.run --standalone --nproc_per_node 2 tools/eval.py \
    "${args[@]}" --json "$tmp/two.json" > "$tmp/two.log" 2>&1 || { tail -30 "$tmp/two.log"; exit 1; }
end=$(date +%s.%N)
$py - "$tmp" "$start" "$end" "$what" <<'PY'
import json, sys
from pathlib import Path
tmp = Path(sys.argv[1])
reports = [json.loads((tmp / f"{n}.json").read_text()) for n in ("one", "two")]
rows = [{r["name"]: r for r in report["rows"]} for report in reports]
keys = ("metric", "metric_ci", "macs_mean", "macs_worst", "delta_metric", "delta_ci", "exit_fractions")
same = (reports[0]["samples"] == reports[1]["samples"] and rows[0].keys() == rows[1].keys()
        and all(r.get(k) == rows[1][n].get(k) for n, r in rows[0].items() for k in keys))
print(f"{sys.argv[4]} (digits, {len(rows[0])} rows, {reports[0]['samples']} samples): report equal to one process: "
      f"{'yes' if same else 'NO'}; {float(sys.argv[3]) - float(sys.argv[2]):.1f} s with the launch")
sys.exit(0 if same else 1)
PY
exit $(( status || $? ))
