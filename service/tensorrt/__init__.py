"""TensorRT: build an engine from the exported ONNX, check it, and serve it.

Pure logic (sidecar matching, buffer sizing, rebuild decisions, FP16 conversion) lives in
modules that import neither TensorRT nor CUDA, so it is tested on machines without a GPU; the
modules that do (``builder``, ``cuda``, ``platform``) import them lazily, inside functions.
"""
