#!/usr/bin/env bash
# The GPU checks in one run, for a host with an NVIDIA GPU and TensorRT (none of the project's
# development machines has one): CUDA buffer/stream round trips, a TensorRT build with its
# parity check against ONNX Runtime on real images, TensorRT vs ONNX Runtime CUDA speed, and the
# service answering on the engine.
#
#   uv sync --frozen --extra gpu --group dev && pip install tensorrt   # or inside docker/Dockerfile's image
#   scripts/gpu_check.sh [engines/<model>.onnx]
#
# Environment: PYTHON (default .venv/bin/python), PORT (default 8123), DEEPLAB_DATA_ROOT (real
# images; default ../shared/data), GPU_CHECK_DIR (where plan, logs and the mask go; default a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
PORT=${PORT:-8123}
MODEL=${1:-$(find engines -maxdepth 1 -name '*.onnx' 2>/dev/null | sort | head -n 1)}
WORK=${GPU_CHECK_DIR:-$(mktemp -d -t gpu-check-XXXXXX)}
if [ -z "$MODEL" ] || [ ! -f "$MODEL" ]; then
    echo "gpu_check: no ONNX model (pass engines/<name>.onnx)" >&2
    exit 2
fi
NAME=$(basename "${MODEL%.onnx}")
step() { printf '\n== %s\n' "$*"; }

step "host"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$PYTHON" -c 'import tensorrt, onnxruntime; from cuda.bindings import runtime
print("TensorRT", tensorrt.__version__, "| ONNX Runtime", onnxruntime.__version__, onnxruntime.get_available_providers())'

step "CUDA buffers, copies and streams; TensorRT build + backend (tests/engine/test_gpu.py)"
"$PYTHON" -m pytest -q -p no:cacheprovider -rs tests/engine/test_gpu.py

step "build_engine.py: FP16 engine, parity with ONNX Runtime, TensorRT vs ONNX Runtime CUDA speed"
mkdir -p "$WORK/models" "$WORK/cache"
cp "$MODEL" "${MODEL%.onnx}.json" "$WORK/models/"
"$PYTHON" build_engine.py "$WORK/models/$NAME.onnx" -o "$WORK/cache/$NAME.plan" --compare-onnxruntime

step "service on the engine (--backend tensorrt)"
DEEPLAB_ENGINE_CACHE="$WORK/cache" "$PYTHON" -m service --backend tensorrt --port "$PORT" \
    --models "$WORK/models" >"$WORK/service.log" 2>&1 &
SERVICE=$!
trap 'kill "$SERVICE" 2>/dev/null || true' EXIT
for _ in $(seq 1 180); do
    curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    kill -0 "$SERVICE" 2>/dev/null || { cat "$WORK/service.log"; exit 1; }
    sleep 1
done
curl -fsS "http://127.0.0.1:$PORT/readyz"; echo
IMAGE=$(find "${DEEPLAB_DATA_ROOT:-../shared/data}" -name '*.jpg' 2>/dev/null | sort | head -n 1 || true)
if [ -z "$IMAGE" ]; then
    IMAGE="$WORK/noise.jpg"
    "$PYTHON" -c 'import sys, numpy as np; from PIL import Image
Image.fromarray(np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(sys.argv[1])' "$IMAGE"
fi
curl -fsS -D "$WORK/headers.txt" -o "$WORK/mask.png" -H "Content-Type: image/jpeg" \
    --data-binary "@$IMAGE" "http://127.0.0.1:$PORT/segment?model=$NAME"
grep -i -E '^(x-backend|server-timing):' "$WORK/headers.txt"
grep -qi '^x-backend: tensorrt' "$WORK/headers.txt" || { echo "gpu_check: not served by TensorRT" >&2; exit 1; }

step "done: plan, sidecar, logs and mask in $WORK"
