#!/usr/bin/env bash
# A 2-rank torchrun evaluation against one process on the same device: the report (every row's
# metric, interval, MACs, exits) and the cached outputs, bit for bit. gpu_check.sh runs it last.
#
#   bash benchmarks/torchrun_check.sh               # 2+ GPUs: a rank on each; 1 GPU: both ranks on it
#   bash benchmarks/torchrun_check.sh --device cpu  # 2 CPU processes (the tests run this)
#
# The job's process group is gloo's on GPUs too (its one collective is the final barrier), so two
# ranks can share one GPU: the closest run to 2 GPUs that a 1-GPU machine allows.
# PYTHON picks the interpreter (default: the README's .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}

gpus=$($py -c "import torch; print(torch.cuda.device_count())")
if [[ " $* " == *" --device cpu "* ]]; then
    what="2-rank torchrun on the CPU (gloo)" device=cpu
elif [ "$gpus" -ge 2 ]; then
    what="2-GPU torchrun (cuda:0, cuda:1)" device=cuda
elif [ "$gpus" -eq 1 ]; then
    what="2-rank torchrun on one GPU (both ranks on cuda:0)" device=cuda:0
else
    echo "torchrun on GPUs: skipped (no CUDA device; --device cpu runs it on the CPU)"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=(--dataset digits --models digits_cnn_s,digits_cnn_m,digits_cnn_l --cascade digits_cnn_s,digits_cnn_l
      --thresholds 0.9 --measure-samples 0 --no-progress --device "$device")
COMMITTEE_TASKS_CACHE=$tmp/one $py tools/eval.py "${args[@]}" --json "$tmp/one.json" > "$tmp/one.log" 2>&1 \
    || { tail -30 "$tmp/one.log"; exit 1; }
start=$(date +%s.%N)
COMMITTEE_TASKS_CACHE=$tmp/two $py -m torch.distributed.run --standalone --nproc_per_node 2 tools/eval.py \
    "${args[@]}" --json "$tmp/two.json" > "$tmp/two.log" 2>&1 || { tail -30 "$tmp/two.log"; exit 1; }
end=$(date +%s.%N)
# rank 1 must have had a share: a split giving rank 0 everything would match one process too
grep -Eq "rank 1 of 2: computed [1-9][0-9]* samples" "$tmp/two.log" \
    || { echo "$what: rank 1 computed nothing"; tail -30 "$tmp/two.log"; exit 1; }
$py - "$tmp" "$start" "$end" "$what" <<'PY'
import json, sys
from pathlib import Path
import numpy as np

tmp = Path(sys.argv[1])
reports = [json.loads((tmp / f"{n}.json").read_text()) for n in ("one", "two")]
rows = [{r["name"]: r for r in report["rows"]} for report in reports]
MEASURED = {"throughput", "throughput_eval_loop", "throughput_eval_loop_by_writer", "speedup_measured"}  # timings
same_report = (all(reports[0].get(k) == reports[1].get(k) for k in ("samples", "skipped", "classes", "temperatures"))
               and list(rows[0]) == list(rows[1])
               and all(r.keys() - MEASURED == rows[1][n].keys() - MEASURED
                       and all(v == rows[1][n][k] for k, v in r.items() if k not in MEASURED) for n, r in rows[0].items()))


def cached(root: Path) -> dict:
    """Every member's cached arrays, rows in sample-id order."""
    found = {}
    for manifest in sorted(root.rglob("manifest.json")):
        shards = [np.load(s) for s in sorted(manifest.parent.glob("shard-*.npz"))]
        arrays = {k: np.concatenate([s[k] for s in shards]) for k in shards[0].files}
        if len(set(arrays["ids"].tolist())) != len(arrays["ids"]):
            print(f"{root.name}: {manifest.parent.name} holds a sample twice")
            return {}
        order = np.argsort(arrays["ids"], kind="stable")
        found[manifest.parent.name] = {k: v[order] for k, v in arrays.items()}
    return found


caches = [cached(tmp / n) for n in ("one", "two")]
same_cache = (bool(caches[0]) and caches[0].keys() == caches[1].keys()
              and all(a.keys() == caches[1][m].keys() and all(np.array_equal(v, caches[1][m][k]) for k, v in a.items())
                      for m, a in caches[0].items()))
print(f"{sys.argv[4]} (digits, {len(rows[0])} rows, {reports[0]['samples']} samples): report equal to one process: "
      f"{'yes' if same_report else 'NO'}; cached outputs bit for bit: {'yes' if same_cache else 'NO'}; "
      f"{float(sys.argv[3]) - float(sys.argv[2]):.1f} s with the launch")
sys.exit(0 if same_report and same_cache else 1)
PY
