"""Pinned host memory, device memory, streams and async copies through cuda-python.

``cuda.bindings.runtime`` is what NVIDIA's current TensorRT samples use (pycuda needs compiling
on the host). Every call returns ``(error, *values)``; ``_call`` turns a non-success code into an
exception that names the call. ``EngineRunner`` only talks to the small ``CudaRuntime`` surface
below, which is what the CPU tests replace with a NumPy fake.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from service.backends.tensorrt.errors import CudaUnavailable, TensorRTError

INSTALL_HINT = ("install the gpu extra (`uv sync --extra gpu`, which brings cuda-python) or "
                "`pip install cuda-python`")


def _runtime():
    try:
        from cuda.bindings import runtime
    except ImportError:
        raise CudaUnavailable(f"cuda-python is not installed: {INSTALL_HINT}") from None
    return runtime


def _error_name(runtime, error) -> str:
    _, name = runtime.cudaGetErrorName(error)
    return name.decode() if isinstance(name, bytes) else str(name)


def _call(name: str, result):
    """Unpack a cuda-python result tuple, raising with the CUDA error name on failure."""
    runtime = _runtime()
    error, *values = result if isinstance(result, tuple) else (result,)
    if error != runtime.cudaError_t.cudaSuccess:
        raise TensorRTError(f"{name} failed: {_error_name(runtime, error)}")
    return values[0] if len(values) == 1 else tuple(values)


def _cuda_version(runtime, call: str) -> str:
    """``cudaDriverGetVersion``/``cudaRuntimeGetVersion`` as "major.minor" (e.g. 12040 -> "12.4")."""
    error, version = getattr(runtime, call)()
    if error != runtime.cudaError_t.cudaSuccess or not version:
        return "unknown"
    return f"{version // 1000}.{version % 1000 // 10}"


def cuda_python_version() -> str:
    """The installed cuda-bindings (cuda-python) version; its major is the CUDA runtime it links."""
    from importlib.metadata import PackageNotFoundError, version

    for distribution in ("cuda-bindings", "cuda-python"):
        try:
            return version(distribution)
        except PackageNotFoundError:
            continue
    return "unknown"


def _insufficient_driver(runtime) -> str:
    """Name both sides of a driver/runtime mismatch and the two ways out."""
    driver, linked = _cuda_version(runtime, "cudaDriverGetVersion"), _cuda_version(runtime, "cudaRuntimeGetVersion")
    bindings = cuda_python_version()
    return (f"the NVIDIA driver supports CUDA {driver}, but cuda-python {bindings} uses the CUDA "
            f"{linked} runtime (cudaErrorInsufficientDriver). Install the cuda-python major that "
            f"matches the driver and TensorRT (CUDA 12 driver: pip install 'cuda-python>=12.6,<13' "
            f"and tensorrt-cu12), or update the driver (CUDA 13 needs R580 or newer)")


def device_identity(device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of ``device``; ``CudaUnavailable`` if none."""
    runtime = _runtime()
    try:
        error, count = runtime.cudaGetDeviceCount()
    except Exception as error:  # noqa: BLE001 - a missing libcuda is an exception in some releases
        raise CudaUnavailable(f"no NVIDIA driver usable ({error}); TensorRT needs a GPU host "
                              "with the NVIDIA driver (in Docker: the NVIDIA Container Toolkit)") from None
    if error == runtime.cudaError_t.cudaErrorInsufficientDriver:
        raise CudaUnavailable(f"GPU unusable: {_insufficient_driver(runtime)}")
    if error != runtime.cudaError_t.cudaSuccess or count == 0:
        reason = "no CUDA device visible" if error == runtime.cudaError_t.cudaSuccess else \
            _error_name(runtime, error)
        raise CudaUnavailable(f"no GPU: {reason}. TensorRT needs an NVIDIA GPU with its driver "
                              "(in Docker: the NVIDIA Container Toolkit and a GPU reservation)")
    if not 0 <= device < count:
        raise CudaUnavailable(f"GPU {device} requested, this host has {count} (0..{count - 1})")
    props = _call("cudaGetDeviceProperties", runtime.cudaGetDeviceProperties(device))
    name = props.name.split(b"\0", 1)[0].decode() if isinstance(props.name, bytes) else str(props.name)
    return name, f"{props.major}.{props.minor}"


@dataclass
class HostBuffer:
    """Page-locked host memory (fast, async-capable copies) with a NumPy byte view over it."""

    ptr: int
    nbytes: int

    @property
    def array(self) -> np.ndarray:
        raw = ctypes.cast(self.ptr, ctypes.POINTER(ctypes.c_uint8))
        return np.ctypeslib.as_array(raw, (self.nbytes,))


def native_handle_getter():
    """How to get a CUDA object's address: cuda-bindings 13 deprecates ``int(obj)`` (subject to
    removal) for ``cuda.bindings.utils.get_cuda_native_handle``; older releases have only int()."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:
        return int
    return get_cuda_native_handle


def use_device(device: int) -> None:
    """Make ``device`` current on the calling thread: ``cudaSetDevice`` binds only that host
    thread, and every new thread starts on device 0."""
    _call("cudaSetDevice", _runtime().cudaSetDevice(device))


class CudaRuntime:
    """The handful of CUDA runtime calls an engine runner needs, bound to one device."""

    def __init__(self, device: int = 0):
        device_identity(device)  # a clear error before any allocation
        self._rt = _runtime()
        self._native_handle = native_handle_getter()
        self.device = device
        self.bind()

    def bind(self) -> None:
        """Make this runtime's device current on the calling thread (call first on every thread)."""
        use_device(self.device)

    def alloc_host(self, nbytes: int) -> HostBuffer:
        return HostBuffer(_call("cudaMallocHost", self._rt.cudaMallocHost(nbytes)), nbytes)

    def alloc_device(self, nbytes: int) -> int:
        return _call("cudaMalloc", self._rt.cudaMalloc(nbytes))

    def create_stream(self):
        return _call("cudaStreamCreate", self._rt.cudaStreamCreate())

    def stream_handle(self, stream) -> int:
        """The integer handle ``IExecutionContext.execute_async_v3`` takes."""
        return self._native_handle(stream)

    def copy_to_device(self, device_ptr: int, host: HostBuffer, nbytes: int, stream) -> None:
        _call("cudaMemcpyAsync(host->device)", self._rt.cudaMemcpyAsync(
            device_ptr, host.ptr, nbytes, self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))

    def copy_to_host(self, host: HostBuffer, device_ptr: int, nbytes: int, stream) -> None:
        _call("cudaMemcpyAsync(device->host)", self._rt.cudaMemcpyAsync(
            host.ptr, device_ptr, nbytes, self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream))

    def synchronize(self, stream) -> None:
        _call("cudaStreamSynchronize", self._rt.cudaStreamSynchronize(stream))

    def free_host(self, host: HostBuffer) -> None:
        _call("cudaFreeHost", self._rt.cudaFreeHost(host.ptr))

    def free_device(self, device_ptr: int) -> None:
        _call("cudaFree", self._rt.cudaFree(device_ptr))

    def destroy_stream(self, stream) -> None:
        _call("cudaStreamDestroy", self._rt.cudaStreamDestroy(stream))
