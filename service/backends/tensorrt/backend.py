"""The TensorRT backend: a plan built by ``build_engine.py`` on this host, run with cuda-python.

Loading checks the plan's sidecar against this GPU and TensorRT version first: an engine built
elsewhere either fails to deserialize or, worse, runs with kernels tuned for another chip.
``tensorrt_unavailable``/``load_tensorrt`` are this engine's entry in ``service.backends.SPECS``:
``--backend auto`` takes TensorRT only where a matching plan exists.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
from pathlib import Path

import numpy as np

from modelcard.card import ModelCard
from modelcard.files import plan_path
from service.backends.base import Backend, InferenceResult
from service.backends.tensorrt.buffers import TensorSpec, outputs_to_copy
from service.backends.tensorrt.cuda import CudaRuntime
from service.backends.tensorrt.errors import TensorRTError
from service.backends.tensorrt.host import current_platform, import_tensorrt, shared_logger
from service.backends.tensorrt.plan_cache import find_matching_plan
from service.backends.tensorrt.runner import EngineRunner
from service.backends.tensorrt.sidecar import read_sidecar, verify
from service.settings import BackendName, Settings


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


def check_against_card(specs: list[TensorSpec], card: ModelCard, plan_path: Path) -> None:
    """The engine's tensors are the ones the card names, with the card's dtypes (as the ONNX
    Runtime backend checks its session): a plan whose labels came out INT32 or INT64 fails here."""
    by_name = {spec.name: spec for spec in specs}
    expected = {card.input.name: (True, card.input.dtype), card.outputs.labels.name: (False, card.outputs.labels.dtype),
                card.outputs.probabilities.name: (False, card.outputs.probabilities.dtype)}
    for name, (is_input, dtype) in expected.items():
        spec = by_name.get(name)
        if spec is None or spec.is_input != is_input or spec.dtype != np.dtype(dtype):
            found = {s.name: f"{'input' if s.is_input else 'output'} {s.dtype}" for s in specs}
            raise TensorRTError(f"{plan_path}: the card expects {'input' if is_input else 'output'} {name!r} "
                                f"as {dtype}; the engine has {found}")


class TensorRTBackend(Backend):
    name = BackendName.TENSORRT

    def __init__(self, plan_path: str | Path, card: ModelCard, *, max_batch_size: int | None = None,
                 device: int = 0):
        """A plan built from another ONNX file (the card's hash), on another GPU or for smaller
        batches than ``max_batch_size`` is refused before TensorRT reads it."""
        plan_path = Path(plan_path)
        sidecar = read_sidecar(plan_path)
        verify(sidecar, current_platform(device), plan_path, onnx_sha256=card.files.onnx_sha256,
               max_batch=max_batch_size)
        trt = import_tensorrt()
        self.precision = sidecar.precision
        self._labels, self._probabilities = card.outputs.labels.name, card.outputs.probabilities.name
        cuda = CudaRuntime(device)  # device current on this thread before the engine is created on it
        self._runtime = trt.Runtime(shared_logger(trt))
        self._engine = self._runtime.deserialize_cuda_engine(plan_path.read_bytes())
        if self._engine is None:
            raise TensorRTError(f"TensorRT could not deserialize {plan_path}; see its log above")
        specs, engine_max_batch = engine_tensor_specs(trt, self._engine)
        check_against_card(specs, card, plan_path)
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise TensorRTError(f"TensorRT could not create an execution context for {plan_path} "
                                "(usually: not enough free GPU memory for its activations)")
        self.max_batch_size = max_batch_size or engine_max_batch
        self._runner = EngineRunner(self._context, specs, self.max_batch_size, cuda)

    def infer(self, images: np.ndarray, want_probabilities: bool) -> InferenceResult:
        wanted = outputs_to_copy(self._runner.outputs, want_probabilities, self._labels, self._probabilities)
        outputs = self._runner.run(images, wanted)
        return InferenceResult(labels=outputs[self._labels], probabilities=outputs.get(self._probabilities))

    def close(self) -> None:
        """Free the buffers, then drop context, engine and runtime in that order (TensorRT
        objects must be destroyed before the objects they came from), even if freeing fails."""
        try:
            self._runner.close()
        finally:
            self._context = self._engine = self._runtime = None


ENGINE_CACHE_ENV = "DEEPLAB_ENGINE_CACHE"


def plan_directories(card: ModelCard) -> list[Path]:
    """Where plans for ``card`` are looked for: the engine cache (the container's volume, named
    by ``$DEEPLAB_ENGINE_CACHE``), then the card's own directory."""
    cache = os.environ.get(ENGINE_CACHE_ENV)
    return ([Path(cache)] if cache else []) + [card.path.parent]


def _tensorrt_installed() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def _locate(card: ModelCard, device: int) -> tuple[Path | None, str | None]:
    if not _tensorrt_installed():
        return None, "TensorRT is not installed (use the GPU image, or `pip install tensorrt`)"
    try:
        running = current_platform(device)
    except TensorRTError as error:
        return None, str(error)
    directories = plan_directories(card)
    plan, reasons = find_matching_plan(card.files.onnx, card.files.onnx_sha256, directories, running)
    if plan is None:
        return None, ("no plan built for this GPU and TensorRT (" + "; ".join(reasons) + "); build one with: "
                      + shlex.join(["python", "build_engine.py", str(card.onnx_path), "-o",
                                    str(plan_path(card.files.onnx, directories[0]))]))
    return plan, None


def tensorrt_unavailable(card: ModelCard, settings: Settings) -> str | None:
    """Why TensorRT cannot serve ``card`` on the configured GPU: no TensorRT, no GPU, or no plan
    built for that GPU."""
    return _locate(card, settings.onnx.cuda_device_id)[1]


def load_tensorrt(card: ModelCard, settings: Settings) -> TensorRTBackend:
    device = settings.onnx.cuda_device_id
    plan, reason = _locate(card, device)
    if plan is None:
        raise TensorRTError(reason)
    return TensorRTBackend(plan, card, max_batch_size=settings.batching.max_batch_size, device=device)
