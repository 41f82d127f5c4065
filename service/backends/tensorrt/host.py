"""The TensorRT version and GPU of this host: what a plan must have been built for.

``python -m service.backends.tensorrt.host`` prints TensorRT's and cuda-python's versions and the CUDA
major each is built for, and exits 1 when they differ (the GPU image runs it at build time).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import sys

from service.backends.tensorrt.cuda import cuda_python_version, device_identity
from service.backends.tensorrt.errors import CudaUnavailable, TensorRTNotInstalled
from service.backends.tensorrt.sidecar import Platform

INSTALL_HINT = ("TensorRT's Python package is not installed. On a GPU host run `pip install "
                "tensorrt-cu13` (its CUDA libraries are fetched from NVIDIA's package index during the "
                "install), or use the NGC TensorRT image: `docker compose up` builds docker/Dockerfile "
                "on nvcr.io/nvidia/tensorrt. See docs/TENSORRT.md.")

_TENSORRT_WHEEL = re.compile(r"tensorrt[-_]cu(\d+)(?:[-_](?:bindings|libs))?")


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as error:
        raise TensorRTNotInstalled(f"{INSTALL_HINT} (import error: {error})") from None
    return tensorrt


@functools.cache
def shared_logger(trt):
    """The process's one ``trt.Logger``: NVIDIA's samples share a single logger between builder
    and runtime, and ILogger::log must be thread-safe because one logger serves them all."""
    return trt.Logger(trt.Logger.WARNING)


def tensorrt_cuda_major() -> str | None:
    """The CUDA major TensorRT is built for: from its wheels' names (``tensorrt-cu12``,
    ``tensorrt-cu13``), else ``$CUDA_VERSION`` (NGC images set it and ship TensorRT unsuffixed)."""
    for distribution in importlib.metadata.distributions():
        match = _TENSORRT_WHEEL.fullmatch((distribution.metadata["Name"] or "").lower())
        if match:
            return match.group(1)
    cuda_version = os.environ.get("CUDA_VERSION")
    return cuda_version.split(".")[0] if cuda_version else None


def cuda_major_mismatch() -> str | None:
    """Why cuda-python and TensorRT cannot share this process's CUDA, or None (also when unknown)."""
    tensorrt_major, bindings = tensorrt_cuda_major(), cuda_python_version()
    if tensorrt_major is None or bindings == "unknown" or bindings.split(".")[0] == tensorrt_major:
        return None
    major = int(tensorrt_major)
    return (f"TensorRT is built for CUDA {major}, cuda-python {bindings} for CUDA {bindings.split('.')[0]}: "
            f"install the matching cuda-python (pip install 'cuda-python>={major},<{major + 1}')")


def current_platform(device: int = 0) -> Platform:
    """TensorRT version and GPU ``device`` of this host; raises if either is missing or if
    cuda-python and TensorRT are built for different CUDA majors."""
    trt = import_tensorrt()
    mismatch = cuda_major_mismatch()
    if mismatch is not None:
        raise CudaUnavailable(mismatch)
    name, capability = device_identity(device)
    return Platform(tensorrt_version=trt.__version__, gpu_name=name, compute_capability=capability)


def main() -> int:
    try:
        trt = import_tensorrt()
    except TensorRTNotInstalled as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"TensorRT {trt.__version__} (CUDA {tensorrt_cuda_major() or 'unknown'}), "
          f"cuda-python {cuda_python_version()}")
    mismatch = cuda_major_mismatch()
    if mismatch is not None:
        print(f"error: {mismatch}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
