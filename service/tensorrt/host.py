"""The TensorRT version and GPU of this host: what a plan must have been built for."""

from __future__ import annotations

import functools

from service.tensorrt.cuda import device_identity
from service.tensorrt.errors import TensorRTNotInstalled
from service.tensorrt.sidecar import Platform

INSTALL_HINT = ("TensorRT's Python package is not installed. On a GPU host run `pip install "
                "tensorrt` (its CUDA libraries are fetched from NVIDIA's package index during the "
                "install), or use the NGC TensorRT image: `docker compose up` builds docker/Dockerfile "
                "on nvcr.io/nvidia/tensorrt. See docs/TENSORRT.md.")


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


def current_platform(device: int = 0) -> Platform:
    """TensorRT version and GPU of this host; raises if either is missing."""
    trt = import_tensorrt()
    name, capability = device_identity(device)
    return Platform(tensorrt_version=trt.__version__, gpu_name=name, compute_capability=capability)
