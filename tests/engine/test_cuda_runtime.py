"""``CudaRuntime`` itself against a stand-in ``cuda.bindings.runtime`` with NVIDIA's signatures.

The stand-in takes exactly the positional arguments the bindings take, returns ``(error, *values)``
tuples, backs host and device allocations with real memory, keeps the current device per thread,
and refuses what CUDA refuses: a copy whose kind does not match its pointers (swapped
arguments), freeing a pointer with the wrong call, a stream it did not create.
"""

import ctypes
import threading
import types

import numpy as np
import pytest

from service.backends.tensorrt import cuda
from service.backends.tensorrt.buffers import TensorSpec
from service.backends.tensorrt.errors import TensorRTError
from service.backends.tensorrt.runner import EngineRunner
from tests.engine.fakes import CopyContext

SUCCESS, INVALID_VALUE, INVALID_DEVICE = 0, 1, 101
NAMES = {SUCCESS: b"cudaSuccess", INVALID_VALUE: b"cudaErrorInvalidValue", INVALID_DEVICE: b"cudaErrorInvalidDevice"}


def fake_runtime(devices: int = 2):
    """A module with the cuda.bindings.runtime calls CudaRuntime makes (cuda-bindings 13.x)."""
    host, device, streams, current = {}, {}, set(), threading.local()
    rt = types.ModuleType("cuda.bindings.runtime")
    rt.cudaError_t = types.SimpleNamespace(cudaSuccess=SUCCESS, cudaErrorInvalidValue=INVALID_VALUE,
                                           cudaErrorInsufficientDriver=35)
    rt.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice="H2D", cudaMemcpyDeviceToHost="D2H")

    def allocate(table, size):
        memory = ctypes.create_string_buffer(size)
        table[ctypes.addressof(memory)] = memory
        return ctypes.addressof(memory)

    def cudaGetDeviceCount():
        return SUCCESS, devices

    def cudaGetDeviceProperties(device_index):
        return SUCCESS, types.SimpleNamespace(name=b"NVIDIA H200" + b"\0" * 245, major=9, minor=0)

    def cudaSetDevice(device_index):
        if not 0 <= device_index < devices:
            return (INVALID_DEVICE,)
        current.device = device_index
        return (SUCCESS,)

    def cudaMallocHost(size):
        return SUCCESS, allocate(host, size)

    def cudaMalloc(size):
        pointer = allocate(device, size)
        device[pointer].gpu = getattr(current, "device", 0)
        return SUCCESS, pointer

    def cudaStreamCreate():
        stream = types.SimpleNamespace(handle=len(streams) + 1)
        streams.add(id(stream))
        rt.made_streams.append(stream)  # kept alive, so no later object reuses its id
        return SUCCESS, stream

    def cudaMemcpyAsync(dst, src, count, kind, stream):
        expected = {"H2D": (device, host), "D2H": (host, device)}[kind]
        if dst not in expected[0] or src not in expected[1] or id(stream) not in streams:
            return (INVALID_VALUE,)
        ctypes.memmove(dst, src, count)
        return (SUCCESS,)

    def cudaStreamSynchronize(stream):
        return (SUCCESS,) if id(stream) in streams else (INVALID_VALUE,)

    def cudaStreamDestroy(stream):
        if id(stream) not in streams:
            return (INVALID_VALUE,)
        streams.remove(id(stream))
        return (SUCCESS,)

    def free(table):
        return lambda pointer: (SUCCESS,) if table.pop(pointer, None) is not None else (INVALID_VALUE,)

    def cudaGetErrorName(error):
        return SUCCESS, NAMES[error]

    for function in (cudaGetDeviceCount, cudaGetDeviceProperties, cudaSetDevice, cudaMallocHost, cudaMalloc,
                     cudaStreamCreate, cudaMemcpyAsync, cudaStreamSynchronize, cudaStreamDestroy, cudaGetErrorName):
        setattr(rt, function.__name__, function)
    rt.cudaFreeHost, rt.cudaFree = free(host), free(device)
    rt.host, rt.device, rt.streams, rt.made_streams = host, device, streams, []
    return rt


@pytest.fixture
def runtime(monkeypatch):
    rt = fake_runtime()
    monkeypatch.setattr(cuda, "_runtime", lambda: rt)
    monkeypatch.setattr(cuda, "native_handle_getter", lambda: lambda stream: stream.handle)
    return rt


def test_pinned_memory_round_trips_through_the_device_on_a_stream(runtime):
    gpu = cuda.CudaRuntime(1)
    source, back = gpu.alloc_host(64), gpu.alloc_host(64)
    pointer, stream = gpu.alloc_device(64), gpu.create_stream()
    assert runtime.device[pointer].gpu == 1  # allocated after cudaSetDevice(1)
    source.array[:] = np.arange(64, dtype=np.uint8)  # a NumPy view on the pinned memory, no copy
    gpu.copy_to_device(pointer, source, 64, stream)
    gpu.copy_to_host(back, pointer, 64, stream)
    gpu.synchronize(stream)
    np.testing.assert_array_equal(back.array, np.arange(64, dtype=np.uint8))
    assert gpu.stream_handle(stream) == 1
    gpu.destroy_stream(stream)
    for buffer in (source, back):
        gpu.free_host(buffer)
    gpu.free_device(pointer)
    assert runtime.host == {} and runtime.device == {} and runtime.streams == set()


def test_cuda_errors_name_the_call_and_the_cuda_error(runtime):
    gpu = cuda.CudaRuntime(0)
    buffer, stream = gpu.alloc_host(8), gpu.create_stream()
    with pytest.raises(TensorRTError, match=r"cudaMemcpyAsync\(host->device\) failed: cudaErrorInvalidValue"):
        gpu.copy_to_device(buffer.ptr, buffer, 8, stream)  # a host pointer where the device one goes
    with pytest.raises(TensorRTError, match="cudaFree failed: cudaErrorInvalidValue"):
        gpu.free_device(buffer.ptr)
    with pytest.raises(TensorRTError, match="GPU 2 requested, this host has 2"):
        cuda.CudaRuntime(2)


def test_the_runner_on_the_real_cuda_calls(runtime):
    """The same sequence tests/engine/test_gpu.py runs on a GPU, through CudaRuntime's own calls."""
    specs = [TensorSpec("image", np.dtype(np.uint8), (4, 4, 3), True),
             TensorSpec("labels", np.dtype(np.uint8), (4, 4, 3), False)]
    def memmove(dst, src, nbytes, stream_handle):
        ctypes.memmove(dst, src, nbytes)
        return True

    runner = EngineRunner(CopyContext(memmove, 4 * 4 * 3), specs, 4, cuda.CudaRuntime(1))
    for batch in (4, 1, 3):
        images = np.random.default_rng(batch).integers(0, 256, (batch, 4, 4, 3), dtype=np.uint8)
        np.testing.assert_array_equal(runner.run(images, ["labels"])["labels"], images)
    runner.close()
    assert runtime.host == {} and runtime.device == {} and runtime.streams == set()
