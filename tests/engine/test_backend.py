"""The TensorRT backend's load sequence against a stand-in TensorRT runtime and the NumPy CUDA.

The stand-in follows NVIDIA's documented signatures and failure returns:
``deserialize_cuda_engine`` -> None, ``create_execution_context`` -> None, tensor dtypes as
``DataType`` members converted with ``trt.nptype``. Engines are created on the GPU current on
the loading thread, so the fake refuses to deserialize unless the configured GPU is current.
"""

import threading
import types

import numpy as np
import pytest

from service.backends.tensorrt import backend as trt_backend
from service.backends.tensorrt.errors import TensorRTError
from service.backends.tensorrt.sidecar import write_sidecar
from tests.engine.fakes import C, FakeContext, FakeCuda, H, W

NAMES = ("pixels", "mask", "scores")  # a card that does not use the default tensor names


def card(names=NAMES, sha="a" * 64):
    image, labels, probabilities = names
    return types.SimpleNamespace(
        name="polyp", files=types.SimpleNamespace(onnx_sha256=sha),
        input=types.SimpleNamespace(name=image, dtype="uint8"),
        outputs=types.SimpleNamespace(labels=types.SimpleNamespace(name=labels, dtype="uint8"),
                                      probabilities=types.SimpleNamespace(name=probabilities, dtype="float32")))


def fake_tensorrt(cuda, *, labels_dtype="UINT8", context=True, deserializes=True):
    DataType = types.SimpleNamespace(**{name: name for name in ("FLOAT", "HALF", "INT32", "INT64", "UINT8")})
    numpy_types = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8}
    image, labels, probabilities = NAMES
    tensors = {image: ("INPUT", (-1, H, W, 3), "UINT8"), labels: ("OUTPUT", (-1, H, W), labels_dtype),
               probabilities: ("OUTPUT", (-1, H, W, C), "FLOAT")}
    made = {"loggers": []}

    class Engine:
        num_io_tensors = len(tensors)

        def get_tensor_name(self, index):
            return list(tensors)[index]

        def get_tensor_shape(self, name):
            return tensors[name][1]

        def get_tensor_dtype(self, name):
            return getattr(DataType, tensors[name][2])

        def get_tensor_mode(self, name):
            return getattr(trt.TensorIOMode, tensors[name][0])

        def get_tensor_profile_shape(self, name, profile_index):
            assert tensors[name][0] == "INPUT" and profile_index == 0
            return (1, H, W, 3), (2, H, W, 3), (4, H, W, 3)

        def create_execution_context(self):
            cuda.on_gpu()
            return FakeContext(cuda, names=NAMES) if context else None

    class Runtime:
        def __init__(self, logger):
            made["loggers"].append(logger)

        def deserialize_cuda_engine(self, serialized):
            cuda.on_gpu()  # engines live on the device current at deserialization
            return Engine() if deserializes and bytes(serialized) == b"PLAN" else None

    trt = types.ModuleType("tensorrt")
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, severity: None})
    trt.Runtime, trt.DataType = Runtime, DataType
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    trt.nptype = lambda dtype: numpy_types[dtype]
    return trt, made


@pytest.fixture
def plan(tmp_path, make_sidecar):
    path = tmp_path / "polyp.plan"
    path.write_bytes(b"PLAN")
    write_sidecar(make_sidecar(), path)
    return path


@pytest.fixture
def gpu1(monkeypatch, h200):
    """TensorRT and GPU 1 of this host, as stand-ins; returns a factory for the fake TensorRT."""
    cuda = FakeCuda(gpu=1)

    def install(**options):
        trt, made = fake_tensorrt(cuda, **options)
        monkeypatch.setattr(trt_backend, "import_tensorrt", lambda: trt)
        return trt, made

    def cuda_runtime(device):  # like CudaRuntime(device): binds the device on the calling thread
        assert device == cuda.gpu
        cuda.bind()
        return cuda

    monkeypatch.setattr(trt_backend, "current_platform", lambda device: h200)
    monkeypatch.setattr(trt_backend, "CudaRuntime", cuda_runtime)
    return cuda, install


def pixels(batch):
    return np.random.default_rng(batch).integers(0, 256, (batch, H, W, 3), dtype=np.uint8)


def test_backend_serves_the_cards_tensor_names_on_its_gpu_from_any_thread(plan, gpu1):
    cuda, install = gpu1
    install()
    backend = trt_backend.TensorRTBackend(plan, card(), device=1)
    results = []
    worker = threading.Thread(target=lambda: results.append(backend.infer(pixels(3), want_probabilities=True)))
    worker.start()
    worker.join()
    assert len(results) == 1, "inference on the batcher's thread failed"
    np.testing.assert_array_equal(results[0].labels, pixels(3)[..., 0] % C)
    assert results[0].probabilities.shape == (3, H, W, C) and backend.max_batch_size == 4
    assert backend.infer(pixels(1), want_probabilities=False).probabilities is None
    closer = threading.Thread(target=backend.close)
    closer.start()
    closer.join()
    assert len(cuda.freed_devices) == 3


def test_an_engine_whose_labels_are_not_the_cards_uint8_is_refused(plan, gpu1):
    _, install = gpu1
    install(labels_dtype="INT64")
    with pytest.raises(TensorRTError, match=r"expects output 'mask' as uint8.*'mask': 'output int64'"):
        trt_backend.TensorRTBackend(plan, card(), device=1)


def test_a_card_naming_other_tensors_is_refused(plan, gpu1):
    _, install = gpu1
    install()
    with pytest.raises(TensorRTError, match="expects input 'image'"):
        trt_backend.TensorRTBackend(plan, card(names=("image", "mask", "scores")), device=1)


@pytest.mark.parametrize("options, message", [
    ({"context": False}, "could not create an execution context"),
    ({"deserializes": False}, "could not deserialize"),
])
def test_tensorrt_returning_none_is_an_error_not_a_crash_later(plan, gpu1, options, message):
    _, install = gpu1
    install(**options)
    with pytest.raises(TensorRTError, match=message):
        trt_backend.TensorRTBackend(plan, card(), device=1)


def test_a_plan_for_another_onnx_file_is_refused_before_tensorrt_reads_it(plan, gpu1):
    _, install = gpu1
    install()
    with pytest.raises(TensorRTError, match="the model card now lists bbbbbbbbbbbb"):
        trt_backend.TensorRTBackend(plan, card(sha="b" * 64), device=1)


def test_runtimes_share_the_process_logger(plan, gpu1):
    _, install = gpu1
    trt, made = install()
    for _ in range(2):
        trt_backend.TensorRTBackend(plan, card(), device=1).close()
    assert len(made["loggers"]) == 2 and made["loggers"][0] is made["loggers"][1]
