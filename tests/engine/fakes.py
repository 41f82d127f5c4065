"""NumPy stand-ins for CUDA and a TensorRT execution context, strict where CUDA is.

The fake device keeps every allocation as a byte array and the fake context computes outputs
from the bytes actually copied to the device, so a wrong size, offset or missing copy shows up
as wrong results, not just as a wrong call log. Like CUDA, the current device is per host
thread and a new thread starts on device 0: every call checks that the fake's GPU is current.
"""

import threading

import numpy as np

from service.backends.tensorrt.buffers import TensorSpec
from service.backends.tensorrt.errors import TensorRTError

H, W, C = 4, 6, 3
SPECS = [TensorSpec("image", np.dtype(np.uint8), (H, W, 3), True),
         TensorSpec("probabilities", np.dtype(np.float32), (H, W, C), False),
         TensorSpec("labels", np.dtype(np.uint8), (H, W), False)]


class FakeHost:
    def __init__(self, nbytes):
        self.array = np.zeros(nbytes, np.uint8)
        self.nbytes = nbytes


class FakeCuda:
    def __init__(self, fail_on_alloc: int | None = None, gpu: int = 1, fail_sync: bool = False):
        self.device: dict[int, np.ndarray] = {}
        self.hosts: list[FakeHost] = []
        self.log: list[tuple] = []
        self.freed_hosts, self.freed_devices, self.streams = [], [], []
        self._fail_on_alloc, self._fail_sync = fail_on_alloc, fail_sync
        self.gpu, self._current = gpu, threading.local()

    def bind(self):
        self._current.device = self.gpu

    def on_gpu(self):
        """Raise as CUDA would misbehave when the calling thread is on another device."""
        current = getattr(self._current, "device", 0)
        if current != self.gpu:
            raise AssertionError(f"CUDA call on device {current} from {threading.current_thread().name}, "
                                 f"the runner's GPU is {self.gpu}")

    def alloc_host(self, nbytes):
        self.on_gpu()
        self.hosts.append(FakeHost(nbytes))
        return self.hosts[-1]

    def alloc_device(self, nbytes):
        self.on_gpu()
        if self._fail_on_alloc is not None and len(self.device) == self._fail_on_alloc:
            raise TensorRTError("cudaMalloc failed: cudaErrorMemoryAllocation")
        pointer = 0x1000 * (len(self.device) + 1)
        self.device[pointer] = np.zeros(nbytes, np.uint8)
        return pointer

    def create_stream(self):
        self.on_gpu()
        self.streams.append("stream")
        return "stream"

    @staticmethod
    def stream_handle(stream):
        return 7

    def copy_to_device(self, pointer, host, nbytes, stream):
        self.on_gpu()
        self.log.append(("h2d", pointer, nbytes))
        self.device[pointer][:nbytes] = host.array[:nbytes]

    def copy_to_host(self, host, pointer, nbytes, stream):
        self.on_gpu()
        self.log.append(("d2h", pointer, nbytes))
        host.array[:nbytes] = self.device[pointer][:nbytes]

    def synchronize(self, stream):
        self.on_gpu()
        if self._fail_sync:
            raise TensorRTError("cudaStreamSynchronize failed: cudaErrorIllegalAddress")
        self.log.append(("sync",))

    def free_host(self, host):
        self.on_gpu()
        self.freed_hosts.append(host)

    def free_device(self, pointer):
        self.on_gpu()
        self.freed_devices.append(pointer)

    def destroy_stream(self, stream):
        self.on_gpu()
        self.streams.remove(stream)


class FakeContext:
    """labels = red channel mod C; probabilities = one-hot of the labels; read from 'device'."""

    def __init__(self, cuda: FakeCuda, accept_shapes=True, names=("image", "labels", "probabilities")):
        self.cuda, self.addresses, self.shapes, self.accept_shapes = cuda, {}, [], accept_shapes
        self.streams = []
        self.names = names

    def set_tensor_address(self, name, pointer):
        self.addresses[name] = pointer
        return True

    def set_input_shape(self, name, shape):
        self.shapes.append((name, tuple(shape)))
        return self.accept_shapes

    def execute_async_v3(self, stream_handle):
        self.cuda.on_gpu()
        self.streams.append(stream_handle)
        batch = self.shapes[-1][1][0]
        device, (image, label, probability) = self.cuda.device, self.names
        images = device[self.addresses[image]][: batch * H * W * 3].reshape(batch, H, W, 3)
        labels = (images[..., 0] % C).astype(np.uint8)
        device[self.addresses[label]][: labels.nbytes] = labels.reshape(-1)
        probabilities = np.eye(C, dtype=np.float32)[labels]
        device[self.addresses[probability]][: probabilities.nbytes] = probabilities.view(np.uint8).reshape(-1)
        return True


class CopyContext:
    """Stands in for TensorRT: 'runs' by copying the input's device bytes into the labels' with
    ``copy(dst, src, nbytes, stream_handle) -> bool`` (a real device copy on a GPU, memmove here)."""

    def __init__(self, copy, sample_nbytes: int):
        self.copy, self.sample_nbytes, self.addresses, self.batch = copy, sample_nbytes, {}, 0

    def set_tensor_address(self, name, pointer):
        self.addresses[name] = pointer
        return True

    def set_input_shape(self, name, shape):
        self.batch = shape[0]
        return True

    def execute_async_v3(self, stream_handle):
        return self.copy(self.addresses["labels"], self.addresses["image"], self.batch * self.sample_nbytes,
                         stream_handle)
