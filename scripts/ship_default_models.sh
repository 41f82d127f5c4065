#!/usr/bin/env bash
# Evaluate the trained default runs on their val split and export them into engines/
# (ONNX + model card; SavedModel and TFLite under saved_model/<run>/). Each argument is a model
# name, or name=run when the shipped model comes from a run of another name (a fine-tuning run):
#   scripts/ship_default_models.sh [polyp[=run]] [camvid[=run]]   (default: the shipped runs)
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
for spec in "${@:-polyp=polyp-512-aug camvid=camvid-512}"; do
  for model in $spec; do
    name=${model%%=*}
    run=${model#*=}
    "$python" -m training.evaluate --checkpoint_path "checkpoints/$run" --split val --no-progress
    "$python" training/export_model.py --checkpoint_path "checkpoints/$run" --output_dir "saved_model/$run" \
      --onnx --tflite --name "$name" --engines-dir engines
  done
done
