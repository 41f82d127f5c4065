#!/usr/bin/env bash
# Export the held-out-drive CamVid run to ONNX (with its parity checks) and score that ONNX file
# at original resolution on the held-out drive (heldout-0001TP) and on the old val (0016E5):
#   scripts/evaluate_camvid_heldout.sh [run]     (default run: camvid-heldout-512)
# Writes saved_model/<run>/camvid.onnx (+ card) and saved_model/<run>/eval_<split>.json; ships
# nothing (engines/ is untouched: see docs/ACCURACY.md for the shipping rule).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
run=${1:-camvid-heldout-512}
out=saved_model/$run
"$PYTHON" -m training.export --checkpoint_path "checkpoints/$run" --output_dir "$out" --input-size 512 \
  --onnx --opset 17 --name camvid
for split in heldout-0001TP val; do
  "$PYTHON" -m training.evaluate --onnx "$out/camvid.onnx" --split "$split" --no-progress --output "$out/eval_$split.json"
done
