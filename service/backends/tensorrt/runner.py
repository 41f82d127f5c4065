"""Run one TensorRT execution context on a stream with buffers allocated once.

Per request: write the images into pinned memory, copy them to the device, set the input shape
for this batch, enqueue with ``execute_async_v3``, copy back only the outputs asked for, and
synchronise once. The context and the CUDA calls are passed in, so the same code runs against
TensorRT on a GPU and against fakes in the CPU tests.

Threads: the backend is loaded, warmed up, run and closed from different threads (the event
loop's pool, the batcher's thread), and ``cudaSetDevice`` binds only the calling thread, so
every entry point binds the runner's device first. One execution context is not safe to use
from two threads at once; the lock lets one batch at a time use it and its stream.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from service.backends.tensorrt.buffers import TensorSpec, check_images, split_io
from service.backends.tensorrt.errors import TensorRTError


class EngineRunner:
    def __init__(self, context, specs: list[TensorSpec], max_batch: int, cuda):
        self._context = context
        self._cuda = cuda
        self.max_batch = max_batch
        self.input, self.outputs = split_io(specs)
        self._host = {}
        self._device = {}
        self._stream = None
        self._lock = threading.Lock()  # one context, one stream: requests take turns
        try:
            cuda.bind()
            for spec in specs:
                nbytes = spec.nbytes(max_batch)
                self._host[spec.name] = cuda.alloc_host(nbytes)
                self._device[spec.name] = cuda.alloc_device(nbytes)
                if not context.set_tensor_address(spec.name, self._device[spec.name]):
                    raise TensorRTError(f"set_tensor_address({spec.name!r}) was rejected")
            self._stream = cuda.create_stream()
        except BaseException:
            with contextlib.suppress(Exception):  # the allocation failure is the error to report
                self.close()
            raise

    def _host_view(self, spec: TensorSpec, batch: int) -> np.ndarray:
        raw = self._host[spec.name].array[: spec.nbytes(batch)]
        return raw.view(spec.dtype).reshape(spec.shape(batch))

    def run(self, images: np.ndarray, output_names: list[str]) -> dict[str, np.ndarray]:
        """Outputs ``output_names`` for ``images`` (one batch), as arrays the caller owns."""
        batch = check_images(images, self.input, self.max_batch)
        unknown = [name for name in output_names if name not in self.outputs]
        if unknown:
            raise ValueError(f"engine has no output(s) {unknown}; it has {sorted(self.outputs)}")
        cuda, stream = self._cuda, self._stream
        with self._lock:
            cuda.bind()
            np.copyto(self._host_view(self.input, batch), images)
            cuda.copy_to_device(self._device[self.input.name], self._host[self.input.name],
                                self.input.nbytes(batch), stream)
            if not self._context.set_input_shape(self.input.name, self.input.shape(batch)):
                raise TensorRTError(f"input shape {self.input.shape(batch)} is outside the "
                                    "engine's optimisation profile")
            if not self._context.execute_async_v3(cuda.stream_handle(stream)):
                raise TensorRTError("execute_async_v3 failed; see the TensorRT log")
            for name in output_names:
                spec = self.outputs[name]
                cuda.copy_to_host(self._host[name], self._device[name], spec.nbytes(batch), stream)
            cuda.synchronize(stream)
            return {name: self._host_view(self.outputs[name], batch).copy() for name in output_names}

    def close(self) -> None:
        """Free every buffer and the stream, each even when another step fails (a faulted
        device fails the sync); the first failure is raised at the end. Safe to call twice."""
        cuda = self._cuda
        with self._lock:
            steps = [cuda.bind]
            if self._stream is not None:
                stream = self._stream
                steps += [lambda: cuda.synchronize(stream), lambda: cuda.destroy_stream(stream)]
            steps += [lambda buffer=buffer: cuda.free_host(buffer) for buffer in self._host.values()]
            steps += [lambda pointer=pointer: cuda.free_device(pointer) for pointer in self._device.values()]
            self._stream = None
            self._host.clear()
            self._device.clear()
            failure = None
            for step in steps:
                try:
                    step()
                except Exception as error:  # noqa: BLE001 - keep freeing; re-raised below
                    failure = failure or error
            if failure is not None:
                raise failure
