#!/usr/bin/env bash
# Evaluate the trained default runs on their val split and export them into engines/ (ONNX,
# its INT8 variant <name>.int8.onnx and the model card, then the card's CRF preset; SavedModel
# and TFLite under saved_model/<run>/). Each argument is a model name, or name=run when the shipped model comes
# from a run of another name (a fine-tuning run), optionally with @scale for the graph's
# inference scale (training.export --inference-scale) and +flip[,flip] for the flips it averages
# over (training.export --test-time-flips):
#   scripts/ship_default_models.sh [polyp[=run][@scale][+flips]] [camvid[=run][@scale][+flips]]
#   e.g. polyp=polyp-appearance+horizontal      (default: the shipped runs)
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
shipped=()
for spec in "${@:-polyp=polyp-appearance+horizontal camvid=camvid-512}"; do
  for model in $spec; do
    flips=()
    if [[ $model == *+* ]]; then IFS=, read -r -a flips <<< "${model#*+}"; model=${model%%+*}; fi
    scale=1.0
    if [[ $model == *@* ]]; then scale=${model#*@}; model=${model%@*}; fi
    name=${model%%=*}
    run=${model#*=}
    graph=(--inference-scale "$scale")
    if (( ${#flips[@]} )); then graph+=(--test-time-flips "${flips[@]}"); fi
    "$python" -m training.evaluate --checkpoint_path "checkpoints/$run" --split val --no-progress "${graph[@]}"
    "$python" -m training.export --checkpoint_path "checkpoints/$run" --output_dir "saved_model/$run" \
      --onnx --int8 --tflite --name "$name" --engines-dir engines "${graph[@]}"
    shipped+=(--model "$name")
  done
done
# The new cards have no CRF preset yet: measure the presets on val and record each model's best.
"$python" -m benchmarks.crf_quality --split val --record "${shipped[@]}"
