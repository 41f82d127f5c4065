#!/usr/bin/env bash
# The GPU checks in one run, for a host with an NVIDIA GPU and TensorRT (none of the project's
# development machines has one). Its output is what to paste into a bug report: versions of the
# driver, TensorRT, cuda-python and ONNX Runtime; CUDA buffer/stream round trips; a TensorRT
# build with its parity check against ONNX Runtime on real images; TensorRT vs ONNX Runtime CUDA
# p50 and throughput at batch 1 and 8 as ratios; the service answering on the engine.
#
# It installs nothing: a missing piece stops it with the command that installs it, e.g.
#   uv sync --frozen --extra gpu --group dev && .venv/bin/pip install tensorrt-cu13
# (or run it inside docker/Dockerfile's image with PYTHON=python).
#
#   scripts/gpu_check.sh [engines/<model>.onnx] 2>&1 | tee gpu_check.txt
#
# Environment: PYTHON (default .venv/bin/python), PORT (default 8123), DEEPLAB_DATA_ROOT (real
# images; default ../shared/data), GPU_CHECK_DIR (where plan, logs and the mask go; default a
# temp dir), CUDA_DEVICE (default 0).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
PORT=${PORT:-8123}
DEVICE=${CUDA_DEVICE:-0}
export DEEPLAB_DATA_ROOT=${DEEPLAB_DATA_ROOT:-../shared/data}
MODEL=${1:-$(find engines -maxdepth 1 -name '*.onnx' 2>/dev/null | sort | head -n 1)}
WORK=${GPU_CHECK_DIR:-$(mktemp -d -t gpu-check-XXXXXX)}
fail() { echo "gpu_check: $*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }
need() { command -v "$1" >/dev/null 2>&1 || fail "$1 not found: $2"; }

if [ -z "$MODEL" ] || [ ! -f "$MODEL" ]; then fail "no ONNX model (pass engines/<name>.onnx)"; fi
need nvidia-smi "install the NVIDIA driver (in Docker: the NVIDIA Container Toolkit and --gpus all)"
need curl "install curl (apt-get install curl)"
need "$PYTHON" "uv sync --frozen --extra gpu --group dev, or set PYTHON"
"$PYTHON" -c 'import pytest, onnxruntime' 2>/dev/null \
    || fail "$PYTHON lacks pytest or onnxruntime: uv sync --frozen --extra gpu --group dev"
NAME=$(basename "${MODEL%.onnx}")

step "report: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), model $MODEL, GPU $DEVICE"
uname -srm
"$PYTHON" --version

step "driver, TensorRT, cuda-python, ONNX Runtime"
nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap --format=csv,noheader
nvidia-smi | grep -o 'CUDA Version: [0-9.]*' || true  # the newest CUDA this driver runs
"$PYTHON" -m service.backends.tensorrt.host  # exits 1 when TensorRT is missing or built for another CUDA major
"$PYTHON" -c 'import onnxruntime as ort; print("ONNX Runtime", ort.__version__, ort.get_available_providers())'
"$PYTHON" -c 'import onnxruntime as ort, sys; sys.exit("CUDAExecutionProvider" not in ort.get_available_providers())' \
    || fail "ONNX Runtime has no CUDA provider: the gpu extra installs onnxruntime-gpu"

step "CUDA buffers, async copies and a stream through the backend's runner (tests/engine/test_gpu.py)"
mkdir -p "$WORK/models" "$WORK/cache"
"$PYTHON" -m pytest -q -p no:cacheprovider -rs \
    "tests/engine/test_gpu.py::test_pinned_device_round_trip_on_a_stream" | tee "$WORK/cuda.log"
if grep -q skipped "$WORK/cuda.log"; then fail "the CUDA round trip was skipped (see the reason above)"; fi

step "build_engine.py: FP16 engine on GPU $DEVICE, parity with ONNX Runtime on real images, speed"
cp "$MODEL" "${MODEL%.onnx}.json" "$WORK/models/"
"$PYTHON" build_engine.py "$WORK/models/$NAME.onnx" -o "$WORK/cache/$NAME.plan" --device "$DEVICE" \
    --opt-batch 8 --compare-onnxruntime 2>&1 | tee "$WORK/build.log"

step "TensorRT vs ONNX Runtime CUDA (the plan's sidecar; exits 1 if parity was skipped)"
"$PYTHON" build_engine.py report "$WORK/cache/$NAME.plan"

step "service on the engine (--backend tensorrt)"
DEEPLAB_ENGINE_CACHE="$WORK/cache" SEG_ONNX__CUDA_DEVICE_ID="$DEVICE" "$PYTHON" -m service \
    --backend tensorrt --port "$PORT" --models "$WORK/models" >"$WORK/service.log" 2>&1 &
SERVICE=$!
trap 'kill "$SERVICE" 2>/dev/null || true' EXIT
for _ in $(seq 1 180); do
    curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    kill -0 "$SERVICE" 2>/dev/null || { cat "$WORK/service.log"; fail "the service exited"; }
    sleep 1
done
curl -fsS "http://127.0.0.1:$PORT/readyz"; echo
IMAGE=$(find "$DEEPLAB_DATA_ROOT" \( -name '*.jpg' -o -name '*.png' \) 2>/dev/null | sort | head -n 1 || true)
[ -n "$IMAGE" ] || fail "no real image under $DEEPLAB_DATA_ROOT (set DEEPLAB_DATA_ROOT)"
curl -fsS -D "$WORK/headers.txt" -o "$WORK/mask.png" --data-binary "@$IMAGE" \
    -H "Content-Type: image/${IMAGE##*.}" "http://127.0.0.1:$PORT/segment?model=$NAME"
grep -i -E '^(x-backend|server-timing):' "$WORK/headers.txt"
grep -qi '^x-backend: tensorrt' "$WORK/headers.txt" || fail "not served by TensorRT (see $WORK/service.log)"

step "done: plan, sidecar, logs and mask in $WORK"
