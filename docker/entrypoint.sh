#!/bin/sh
# GPU container start-up: give every model a TensorRT plan that matches this GPU (built once and
# kept on the engine-cache volume), then start the service, which prefers those plans
# (--backend auto). The decisions live in engine_builder/ensure_engines.py, where they are tested.
# Plans are built on the GPU the service will use (SEG_ONNX__CUDA_DEVICE_ID, as the service reads it).
set -eu

if ! python build_engine.py ensure \
        --models "${SEG_MODELS:-/app/engines}" \
        --cache "${DEEPLAB_ENGINE_CACHE:-/var/cache/deeplab/engines}" \
        --precision "${TRT_PRECISION:-fp16}" \
        --max-batch "${TRT_MAX_BATCH:-32}" \
        --opt-batch "${TRT_OPT_BATCH:-8}" \
        --workspace-mb "${TRT_WORKSPACE_MB:-2048}" \
        --device "${SEG_ONNX__CUDA_DEVICE_ID:-0}"; then
    echo "entrypoint: some TensorRT engines could not be built; those models run on ONNX Runtime" >&2
fi

exec python -m service "$@"
