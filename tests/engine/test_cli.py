"""build_engine.py argument handling and the errors a user meets before any GPU work starts."""

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from engine_builder import cli
from engine_builder.checks import measure_throughput
from service.backends.tensorrt import cuda, host
from service.backends.tensorrt.errors import CudaUnavailable, TensorRTNotInstalled

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def run_cli(argv, capsys):
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_help_runs_from_the_repository_root():
    result = subprocess.run([sys.executable, "build_engine.py", "--help"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for flag in ("--workspace-mb", "--input-size", "--min-batch", "--opt-batch", "--max-batch",
                 "--timing-cache", "--precision"):
        assert flag in result.stdout


def test_defaults_come_from_the_model_card(exported_card_path, exported_card):
    onnx = exported_card_path.with_suffix(".onnx")
    argp = cli.parser()
    args = argp.parse_args([str(onnx)])
    card, profile = cli.resolve_options(args, argp)
    assert card.name == exported_card.name
    assert (profile.height, profile.width) == exported_card.input_size
    assert (profile.min_batch, profile.opt_batch, profile.max_batch) == (1, 8, 32)
    assert (args.precision, args.workspace_mb) == ("fp16", 2048)
    assert args.output == onnx.with_suffix(".plan")
    assert args.timing_cache == onnx.with_suffix(".timing-cache")


@pytest.mark.parametrize("text, expected", [("512", (512, 512)), ("512x384", (512, 384))])
def test_input_size_forms(text, expected):
    assert cli.parse_input_size(text) == expected


@pytest.mark.parametrize("extra, message", [
    (["--min-batch", "8", "--opt-batch", "4"], "min_batch <= opt_batch <= max_batch"),
    (["--input-size", "640"], "differs from the model's fixed input"),
    (["--input-size", "big"], "input size must be N or HxW"),
    (["--precision", "int8"], "invalid choice: 'int8'"),
    (["--workspace-mb", "8"], "--workspace-mb must be at least 64"),
])
def test_bad_arguments_exit_2_with_a_reason(exported_card_path, capsys, extra, message):
    status, output = run_cli([exported_card_path.with_suffix(".onnx"), *extra], capsys)
    assert status == 2 and message in output


def test_missing_onnx_and_missing_card(tmp_path, capsys):
    status, output = run_cli([tmp_path / "nope.onnx"], capsys)
    assert status == 2 and f"ONNX file not found: {tmp_path / 'nope.onnx'}" in output
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(b"onnx")
    status, output = run_cli([lonely], capsys)
    assert status == 2 and "lonely.json: model card not found" in output


def test_unwritable_output_fails_before_tensorrt_is_needed(exported_card_path, tmp_path, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    status, output = run_cli([exported_card_path.with_suffix(".onnx"), "-o", blocker / "model.plan"], capsys)
    assert status == 1 and f"cannot write {blocker / 'model.plan'}" in output and "-o" in output
    status, output = run_cli([exported_card_path.with_suffix(".onnx"), "-o", tmp_path], capsys)
    assert status == 1 and "is a directory" in output


def test_missing_tensorrt_says_what_to_install(exported_card_path, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as on any machine without TensorRT
    status, output = run_cli([exported_card_path.with_suffix(".onnx"), "-o", tmp_path / "m.plan"], capsys)
    assert status == 1
    assert "TensorRT's Python package is not installed" in output
    assert "pip install tensorrt" in output and "nvcr.io/nvidia/tensorrt" in output
    with pytest.raises(TensorRTNotInstalled):
        host.import_tensorrt()


def fake_cuda_runtime(error_code: int, count: int, driver: int = 12040, runtime: int = 13000):
    """cuda.bindings.runtime as far as device discovery goes: every call returns (error, *values)."""
    errors = types.SimpleNamespace(cudaSuccess=0, cudaErrorNoDevice=100, cudaErrorInsufficientDriver=35)
    names = {100: b"cudaErrorNoDevice", 35: b"cudaErrorInsufficientDriver"}
    return types.SimpleNamespace(cudaError_t=errors, cudaGetDeviceCount=lambda: (error_code, count),
                                 cudaGetErrorName=lambda code: (0, names[code]),
                                 cudaDriverGetVersion=lambda: (0, driver),
                                 cudaRuntimeGetVersion=lambda: (0, runtime))


@pytest.mark.parametrize("error_code, count, fragment", [
    (100, 0, "no GPU: cudaErrorNoDevice"),
    (0, 0, "no GPU: no CUDA device visible"),
])
def test_no_gpu_is_a_clear_error(monkeypatch, error_code, count, fragment):
    monkeypatch.setattr(cuda, "_runtime", lambda: fake_cuda_runtime(error_code, count))
    with pytest.raises(CudaUnavailable, match=fragment) as error:
        cuda.device_identity()
    assert "NVIDIA Container Toolkit" in str(error.value)


def test_an_old_driver_is_named_as_a_driver_runtime_mismatch_not_as_no_gpu(monkeypatch):
    """cuda-python 13 on a CUDA 12 driver (R535-R570): cudaGetDeviceCount -> insufficient driver."""
    monkeypatch.setattr(cuda, "_runtime", lambda: fake_cuda_runtime(35, 0, driver=12040, runtime=13000))
    monkeypatch.setattr(cuda, "cuda_python_version", lambda: "13.4.4")
    with pytest.raises(CudaUnavailable) as error:
        cuda.device_identity()
    message = str(error.value)
    assert "no GPU" not in message
    assert "driver supports CUDA 12.4, but cuda-python 13.4.4 uses the CUDA 13.0 runtime" in message
    assert "cudaErrorInsufficientDriver" in message and "cuda-python>=12.6,<13" in message


def test_no_gpu_stops_the_build_with_exit_1(exported_card_path, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(host, "import_tensorrt", lambda: types.SimpleNamespace(__version__="10.13.3.9"))
    monkeypatch.setattr(cuda, "_runtime", lambda: fake_cuda_runtime(100, 0))
    monkeypatch.setattr(host, "device_identity", cuda.device_identity)
    status, output = run_cli([exported_card_path.with_suffix(".onnx"), "-o", tmp_path / "m.plan"], capsys)
    assert status == 1 and "no GPU: cudaErrorNoDevice" in output


def test_missing_cuda_python_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    monkeypatch.setitem(sys.modules, "cuda", None)
    with pytest.raises(CudaUnavailable, match="cuda-python is not installed"):
        cuda.device_identity()


def test_throughput_is_measured_on_full_batches():
    seen = []
    timing = iter(np.arange(0, 100, 0.5))
    result = measure_throughput(lambda batch: seen.append(len(batch)), np.zeros((3, 2, 2, 3), np.uint8),
                                    batch=8, iterations=4, warmup=1, clock=lambda: next(timing))
    assert seen == [8] * 5
    assert result.latency_ms_p50 == pytest.approx(500.0) and result.images_per_s == pytest.approx(16.0)


@pytest.fixture
def stand_in_build(monkeypatch, h200):
    """build_engine.py on a stand-in GPU host: TensorRT 10, GPU 1; records what the builder gets."""
    seen = {}
    trt = types.SimpleNamespace(__version__=h200.tensorrt_version, BuilderFlag=types.SimpleNamespace(FP16=0))
    monkeypatch.setattr(host, "import_tensorrt", lambda: trt)
    monkeypatch.setattr(host, "current_platform", lambda device: h200)
    monkeypatch.setattr(cuda, "use_device", lambda device: seen.setdefault("device", device))

    def build(trt_module, request, printer):
        import onnx

        seen["fed"] = onnx.load(str(request.onnx_path))
        return b"PLAN"

    monkeypatch.setattr(cli.builder, "build_serialized_engine", build)
    return seen


def test_a_plan_that_fails_its_check_or_crashes_mid_check_is_never_written(exported_card_path, tmp_path, capsys,
                                                                           monkeypatch, stand_in_build):
    from service.backends.tensorrt.errors import ParityFailure

    def failing_check(*args, **kwargs):
        raise ParityFailure("labels agree on 91% of pixels")

    monkeypatch.setattr(cli, "check_engine", failing_check)
    plan = tmp_path / "out" / "m.plan"
    status, output = run_cli([exported_card_path.with_suffix(".onnx"), "-o", plan, "--device", "1"], capsys)
    assert status == 1 and "91% of pixels" in output
    assert stand_in_build["device"] == 1  # the builder runs with GPU 1 current on its thread
    assert sorted(path.name for path in plan.parent.iterdir()) == []  # no plan, sidecar or scratch left


def test_a_checked_plan_is_written_with_its_parity_and_the_graph_tensorrt_accepts(exported_card_path, tmp_path,
                                                                                  capsys, monkeypatch, stand_in_build):
    from onnx import TensorProto

    checked = {}

    def passing_check(args, candidate, card, profile, sidecar, images, log):
        checked["plan exists during the check"] = (tmp_path / "m.plan").exists()
        checked["candidate"] = candidate.read_bytes()
        return sidecar.with_results(parity={"label_agreement": 1.0, "max_abs_prob_diff": 0.0, "images": 2},
                                    benchmark={})

    monkeypatch.setattr(cli, "check_engine", passing_check)
    plan = tmp_path / "m.plan"
    status, _ = run_cli([exported_card_path.with_suffix(".onnx"), "-o", plan], capsys)
    assert status == 0 and plan.read_bytes() == b"PLAN" == checked["candidate"]
    assert checked["plan exists during the check"] is False
    from service.backends.tensorrt.sidecar import read_sidecar

    assert read_sidecar(plan).parity["label_agreement"] == 1.0
    fed = stand_in_build["fed"]
    labels_cast = next(node for node in fed.graph.node if "labels" in node.output)
    to_float = next(node for node in fed.graph.node if labels_cast.input[0] in node.output)
    assert [a.i for a in to_float.attribute if a.name == "to"] == [TensorProto.FLOAT]


@pytest.mark.parametrize("wheels, environment, bindings, fragment", [
    (["tensorrt-cu12", "tensorrt_cu12_libs"], None, "13.4.4", "TensorRT is built for CUDA 12, cuda-python 13.4.4"),
    ([], "12.8.1.012", "13.4.4", "pip install 'cuda-python>=12,<13'"),
    (["tensorrt-cu13"], None, "13.4.4", None),
    ([], None, "13.4.4", None),  # nothing says which CUDA TensorRT has: the driver check decides
])
def test_cuda_python_must_match_tensorrts_cuda_major(monkeypatch, wheels, environment, bindings, fragment):
    distributions = [types.SimpleNamespace(metadata={"Name": name}) for name in ("numpy", *wheels)]
    monkeypatch.setattr(host.importlib.metadata, "distributions", lambda: distributions)
    monkeypatch.setattr(host, "cuda_python_version", lambda: bindings)
    if environment is None:
        monkeypatch.delenv("CUDA_VERSION", raising=False)
    else:
        monkeypatch.setenv("CUDA_VERSION", environment)
    mismatch = host.cuda_major_mismatch()
    assert mismatch is None if fragment is None else fragment in mismatch
    monkeypatch.setattr(host, "import_tensorrt", lambda: types.SimpleNamespace(__version__="10.13.3.9"))
    monkeypatch.setattr(host, "device_identity", lambda device: ("NVIDIA H200", "9.0"))
    if fragment is None:
        assert host.current_platform(0).gpu_name == "NVIDIA H200"
    else:
        with pytest.raises(CudaUnavailable, match="TensorRT is built for CUDA 12"):
            host.current_platform(0)


def test_stream_handles_use_the_native_handle_api_where_cuda_bindings_has_it(monkeypatch):
    """cuda-bindings 13.0 deprecated int(cuda_obj) for cuda.bindings.utils.get_cuda_native_handle."""
    utils = types.ModuleType("cuda.bindings.utils")
    utils.get_cuda_native_handle = lambda obj: obj.address
    monkeypatch.setitem(sys.modules, "cuda.bindings.utils", utils)
    assert cuda.native_handle_getter()(types.SimpleNamespace(address=0x7F00)) == 0x7F00
    monkeypatch.setitem(sys.modules, "cuda.bindings.utils", None)  # cuda-bindings 12.x
    assert cuda.native_handle_getter() is int


def test_agreement_below_the_parity_table_is_a_build_error_naming_what_failed():
    from engine_builder.checks import require_agreement
    from modelcard.parity import TOLERANCES, Parity
    from service.backends.tensorrt.errors import ParityFailure

    minimum = TOLERANCES["tensorrt"][1]
    require_agreement(Parity(0.0, minimum, 2), "plan", "tensorrt")
    with pytest.raises(ParityFailure, match=r"engine\.plan: .*below 0\.995"):
        require_agreement(Parity(0.0, minimum - 0.001, 2), "engine.plan", "tensorrt")
