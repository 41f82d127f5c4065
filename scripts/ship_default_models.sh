#!/usr/bin/env bash
# Evaluate the trained default runs on their val split and export them into engines/
# (ONNX + model card; SavedModel and TFLite under saved_model/<name>/). Usage:
#   scripts/ship_default_models.sh [polyp] [camvid]
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
for name in "${@:-polyp camvid}"; do
  for run in $name; do
    "$python" -m training.evaluate --checkpoint_path "checkpoints/$run" --split val --no-progress
    "$python" training/export_model.py --checkpoint_path "checkpoints/$run" --output_dir "saved_model/$run" \
      --onnx --tflite --name "$run" --engines-dir engines
  done
done
