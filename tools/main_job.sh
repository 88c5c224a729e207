#!/usr/bin/env bash
# The main job on the embedded default (real handwritten digits, three CNNs whose checkpoints ship in tasks/classification/weights):
# evaluate the zoo, one ensemble and one cascade (measured for real), search every committee of
# the pool, and write the paper-style table and plot. Usage: tools/main_job.sh [OUTPUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-outputs/digits}
mkdir -p "$out"
py=.venv/bin/python
$py tools/eval.py --config configs/committees/digits_default.json --no-progress \
    --json "$out/eval.json" --csv "$out/eval.csv"
$py tools/search.py --dataset digits --pool digits_cnn_s,digits_cnn_m,digits_cnn_l --no-progress --cards "$out/cards" \
    --json "$out/search.json"
$py tools/report.py "$out/search.json" --out "$out"
echo "wrote $out: eval.json/csv (the table above), search.json, cards/ (the chosen committees, runnable with load_committee), committees.{md,tex,csv,json} and the plot"
