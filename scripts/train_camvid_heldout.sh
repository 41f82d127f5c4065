#!/usr/bin/env bash
# Train the held-out-drive CamVid model (issue 13): stage 1 (256 crops, from scratch), then
# stage 2 (512 crops, from stage 1's best weights). Validation during both: heldout-0001TP.
#   scripts/train_camvid_heldout.sh                       # no time limit (about 80 min on 2 idle cores)
#   DEADLINE=$(date -d 14:33 +%s) scripts/train_camvid_heldout.sh   # both stages stop by then;
#       stage 1's epochs are sized to STAGE1_MAX_MINUTES by training.budget, so its schedule ends
#   STAGES=long scripts/train_camvid_heldout.sh           # the long recipe (camvid_heldout_long*.toml)
# Rerunning resumes each stage from its last checkpoint (training.train does that itself).
set -euo pipefail
PYTHON=${PYTHON:-python}
STAGE1_MAX_MINUTES=${STAGE1_MAX_MINUTES:-50}
CONFIGS=training/configs/camvid_heldout${STAGES:+_$STAGES}

minutes_left() {  # whole minutes until $DEADLINE, minus a 2-minute margin
  echo $(( (DEADLINE - $(date +%s)) / 60 - 2 ))
}

stage1=(-m training.train) limit2=()
if [[ -n "${DEADLINE:-}" ]]; then
  left=$(minutes_left)
  (( left > STAGE1_MAX_MINUTES )) || { echo "not enough time before the deadline" >&2; exit 1; }
  stage1=(-m training.budget --minutes "$STAGE1_MAX_MINUTES")
fi
echo "== stage 1 $(date -u +%FT%TZ)"
"$PYTHON" "${stage1[@]}" --config "$CONFIGS.toml"
if [[ -n "${DEADLINE:-}" ]]; then
  limit2=(--max-minutes "$(minutes_left)")
fi
echo "== stage 2 $(date -u +%FT%TZ) ${limit2[*]}"
"$PYTHON" -m training.train --config "${CONFIGS}_512.toml" "${limit2[@]}"
echo "== done $(date -u +%FT%TZ)"
