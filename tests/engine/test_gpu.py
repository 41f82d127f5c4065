"""Checks that need real hardware; each skips with the reason on a machine without it.

- CUDA buffers and copies (cuda-python + an NVIDIA GPU): pinned host <-> device round trips and
  async copies on a stream, through the same EngineRunner the backend uses.
- A real TensorRT build and the backend on it (TensorRT + GPU), compared with ONNX Runtime.
"""

import importlib.util

import numpy as np
import pytest

from service.backends.tensorrt.buffers import TensorSpec
from service.backends.tensorrt.errors import TensorRTError
from tests.engine.fakes import CopyContext


def cuda_runtime_or_skip():
    if importlib.util.find_spec("cuda") is None or importlib.util.find_spec("cuda.bindings") is None:
        pytest.skip("cuda-python is not installed (the gpu extra brings it)")
    from service.backends.tensorrt.cuda import CudaRuntime

    try:
        return CudaRuntime()
    except TensorRTError as error:
        pytest.skip(f"no usable GPU: {error}")


def device_copy(dst, src, nbytes, stream_handle) -> bool:
    from cuda.bindings import runtime

    error, = runtime.cudaMemcpyAsync(dst, src, nbytes, runtime.cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream_handle)
    return error == runtime.cudaError_t.cudaSuccess


def test_pinned_device_round_trip_on_a_stream():
    cuda = cuda_runtime_or_skip()
    specs = [TensorSpec("image", np.dtype(np.uint8), (8, 8, 3), True),
             TensorSpec("labels", np.dtype(np.uint8), (8, 8, 3), False)]
    from service.backends.tensorrt.runner import EngineRunner

    runner = EngineRunner(CopyContext(device_copy, 8 * 8 * 3), specs, 4, cuda)
    try:
        for batch in (4, 1, 3):
            images = np.random.default_rng(batch).integers(0, 256, (batch, 8, 8, 3), dtype=np.uint8)
            np.testing.assert_array_equal(runner.run(images, ["labels"])["labels"], images)
    finally:
        runner.close()


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None,
                    reason="TensorRT is not installed (NGC image or `pip install tensorrt`)")
def test_tensorrt_build_and_backend_match_onnx_runtime(exported_card_path, exported_card, tmp_path):
    cuda_runtime_or_skip()
    from engine_builder import cli
    from engine_builder.checks import sample_images
    from modelcard.onnx_runner import OnnxRunner
    from service.backends.tensorrt.backend import TensorRTBackend

    plan = tmp_path / "model.plan"
    assert cli.main([str(exported_card_path.with_suffix(".onnx")), "-o", str(plan), "--max-batch", "4",
                     "--opt-batch", "2", "--parity-images", "4"]) == 0
    images = sample_images(exported_card.training.recipe, 4, exported_card.input_size)
    backend = TensorRTBackend(plan, exported_card)
    try:
        result = backend.infer(images, want_probabilities=False)
        assert result.probabilities is None
        _, reference = OnnxRunner(exported_card_path.with_suffix(".onnx"))(images)
        assert np.mean(result.labels == reference) >= 0.995
    finally:
        backend.close()
