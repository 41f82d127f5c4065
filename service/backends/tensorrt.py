"""The TensorRT backend: a plan built by ``build_engine.py`` on this host, run with cuda-python.

Loading checks the plan's sidecar against this GPU and TensorRT version first: an engine built
elsewhere either fails to deserialize or, worse, runs with kernels tuned for another chip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.backends.base import Backend, InferenceResult
from service.tensorrt.buffers import TensorSpec, outputs_to_copy
from service.tensorrt.cuda import CudaRuntime
from service.tensorrt.errors import TensorRTError
from service.tensorrt.host import current_platform, import_tensorrt
from service.tensorrt.runner import EngineRunner
from service.tensorrt.sidecar import read_sidecar, verify


def engine_tensor_specs(trt, engine) -> tuple[list[TensorSpec], int]:
    """I/O tensors of a deserialized engine and the largest batch of its first profile."""
    specs = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        shape = tuple(engine.get_tensor_shape(name))
        specs.append(TensorSpec(name=name, dtype=np.dtype(trt.nptype(engine.get_tensor_dtype(name))),
                                sample_shape=shape[1:],
                                is_input=engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT))
    input_name = next(spec.name for spec in specs if spec.is_input)
    _, _, max_shape = engine.get_tensor_profile_shape(input_name, 0)
    return specs, int(max_shape[0])


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, plan_path: str | Path, *, onnx_sha256: str | None = None,
                 max_batch_size: int | None = None, device: int = 0):
        """``onnx_sha256``/``max_batch_size``: what the model card and the service expect; a
        plan built from another ONNX file or for smaller batches is refused like one built on
        another GPU."""
        plan_path = Path(plan_path)
        sidecar = read_sidecar(plan_path)
        verify(sidecar, current_platform(device), plan_path, onnx_sha256=onnx_sha256,
               max_batch=max_batch_size)
        trt = import_tensorrt()
        self.precision = sidecar.precision
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(plan_path.read_bytes())
        if self._engine is None:
            raise TensorRTError(f"TensorRT could not deserialize {plan_path}; see its log above")
        self._context = self._engine.create_execution_context()
        specs, engine_max_batch = engine_tensor_specs(trt, self._engine)
        self.max_batch_size = max_batch_size or engine_max_batch
        self._runner = EngineRunner(self._context, specs, self.max_batch_size, CudaRuntime(device))

    def infer(self, images: np.ndarray, want_probabilities: bool) -> InferenceResult:
        outputs = self._runner.run(images, outputs_to_copy(self._runner.outputs, want_probabilities))
        return InferenceResult(labels=outputs["labels"], probabilities=outputs.get("probabilities"))

    def close(self) -> None:
        self._runner.close()
        self._context = self._engine = self._runtime = None
