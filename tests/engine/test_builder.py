"""The builder's TensorRT calls against a stand-in ``tensorrt`` module that records them.

What a real build does with these calls is only checked on a GPU host (scripts/gpu_check.sh);
here we check which calls are made with which values for TensorRT 10 (FP16 builder flag) and
TensorRT 11 (no flag: strongly typed network), and how failures are reported.
"""

import io
import types

import pytest

from service.tensorrt import builder
from service.tensorrt.errors import OnnxParseError, TensorRTError
from service.tensorrt.sidecar import BatchProfile


class FakeParserError:
    def __init__(self, node, name, operator, code, desc):
        self._values = node, name, operator, code, desc

    def node(self):
        return self._values[0]

    def node_name(self):
        return self._values[1]

    def node_operator(self):
        return self._values[2]

    def code(self):
        return self._values[3]

    def desc(self):
        return self._values[4]


def fake_tensorrt(has_fp16_flag: bool):
    calls = {"flags": [], "pools": {}, "profiles": []}

    class IProgressMonitor:
        def __init__(self):
            pass

    class Input:
        def __init__(self, name):
            self.name = name

    class Network:
        def __init__(self, flags):
            calls["network_flags"] = flags
            self.inputs = []

        @property
        def num_inputs(self):
            return len(self.inputs)

        def get_input(self, index):
            return self.inputs[index]

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        def parse_from_file(self, path):
            text = open(path).read()
            if text.startswith("bad"):
                self.errors = [FakeParserError(3, "aspp/pool", "ReduceMean", "UNSUPPORTED_NODE", "axes must be constant"),
                               FakeParserError(7, "", "", "INVALID_GRAPH", "dangling input")]
                return False
            self.network.inputs = [Input(text.strip())]
            return True

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, index):
            return self.errors[index]

    class TimingCache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return self.data + b"+tuned"

    class Config:
        progress_monitor = None

        def set_memory_pool_limit(self, pool, size):
            calls["pools"][pool] = size

        def set_flag(self, flag):
            calls["flags"].append(flag)

        def add_optimization_profile(self, profile):
            calls["profiles"].append(profile.shapes)

        def create_timing_cache(self, data):
            return TimingCache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            return cache.data != b"foreign"

        def get_timing_cache(self):
            return self.cache

    class Profile:
        def set_shape(self, name, low, opt, high):
            self.shapes = (name, low, opt, high)

    class Builder:
        fail = False

        def __init__(self, logger):
            pass

        def create_network(self, flags):
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            monitor = config.progress_monitor
            monitor.phase_start("Building engine", None, 2)
            monitor.phase_start("Tactic selection", "Building engine", 3)
            assert monitor.step_complete("Tactic selection", 0) is True
            monitor.phase_finish("Tactic selection")
            monitor.phase_finish("Building engine")
            return None if Builder.fail else b"PLAN"

    flag_names = ["TF32"] + (["FP16"] if has_fp16_flag else [])
    trt = types.SimpleNamespace(
        BuilderFlag=types.SimpleNamespace(**{name: name for name in flag_names}),
        NetworkDefinitionCreationFlag=types.SimpleNamespace(STRONGLY_TYPED=1),
        MemoryPoolType=types.SimpleNamespace(WORKSPACE="WORKSPACE"),
        Logger=types.SimpleNamespace(WARNING=2), IProgressMonitor=IProgressMonitor,
        Builder=Builder, OnnxParser=OnnxParser)
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    return trt, calls


def request(tmp_path, *, fp16_flag=False, strongly_typed=False, graph="image", cache=b""):
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_text(graph)
    cache_path = tmp_path / "model.timing-cache"
    if cache:
        cache_path.write_bytes(cache)
    return builder.BuildRequest(onnx_path=onnx_path, input_name="image", profile=BatchProfile(1, 8, 32, 512, 512),
                                workspace_mb=2048, fp16_flag=fp16_flag, strongly_typed=strongly_typed,
                                timing_cache=cache_path)


def quiet():
    return builder.ProgressPrinter(io.StringIO(), interval=0)


def test_fp16_mode_follows_the_installed_tensorrt():
    assert builder.fp16_mode(fake_tensorrt(has_fp16_flag=True)[0]) == builder.BUILDER_FLAG
    assert builder.fp16_mode(fake_tensorrt(has_fp16_flag=False)[0]) == builder.STRONGLY_TYPED


def test_tensorrt_10_fp16_build_sets_the_flag_profile_workspace_and_timing_cache(tmp_path):
    trt, calls = fake_tensorrt(has_fp16_flag=True)
    build = request(tmp_path, fp16_flag=True, cache=b"old")
    assert builder.build_serialized_engine(trt, build, quiet()) == b"PLAN"
    assert calls["network_flags"] == 0
    assert calls["flags"] == ["FP16"]
    assert calls["pools"] == {"WORKSPACE": 2048 << 20}
    assert calls["profiles"] == [("image", [1, 512, 512, 3], [8, 512, 512, 3], [32, 512, 512, 3])]
    assert build.timing_cache.read_bytes() == b"old+tuned"


def test_tensorrt_11_build_is_strongly_typed_without_precision_flags(tmp_path):
    trt, calls = fake_tensorrt(has_fp16_flag=False)
    builder.build_serialized_engine(trt, request(tmp_path, strongly_typed=True), quiet())
    assert calls["network_flags"] == 1 << 1
    assert calls["flags"] == []


def test_every_parser_error_is_reported(tmp_path):
    trt, _ = fake_tensorrt(has_fp16_flag=True)
    with pytest.raises(OnnxParseError) as error:
        builder.build_serialized_engine(trt, request(tmp_path, graph="bad graph"), quiet())
    message = str(error.value)
    assert "could not parse" in message and "(2 error(s))" in message
    assert "node aspp/pool (ReduceMean) UNSUPPORTED_NODE: axes must be constant" in message
    assert "node #7 INVALID_GRAPH: dangling input" in message


def test_a_graph_without_the_cards_input_is_refused(tmp_path):
    trt, _ = fake_tensorrt(has_fp16_flag=True)
    with pytest.raises(OnnxParseError, match=r"expected one input 'image'.*\['input_1'\]"):
        builder.build_serialized_engine(trt, request(tmp_path, graph="input_1"), quiet())


def test_failed_build_and_foreign_timing_cache(tmp_path):
    trt, _ = fake_tensorrt(has_fp16_flag=True)
    trt.Builder.fail = True
    out = io.StringIO()
    with pytest.raises(TensorRTError, match="failed to build.*--workspace-mb"):
        builder.build_serialized_engine(trt, request(tmp_path, cache=b"foreign"),
                                        builder.ProgressPrinter(out, interval=0))
    assert "is from another GPU or TensorRT; starting afresh" in out.getvalue()


def test_progress_is_printed_as_a_tree_and_steps_are_throttled():
    now = [0.0]
    out = io.StringIO()
    printer = builder.ProgressPrinter(out, interval=5.0, clock=lambda: now[0])
    printer.phase_start("Building engine", None, 2)
    printer.phase_start("Tactic selection", "Building engine", 40)
    for step in range(3):
        now[0] += 2.0
        assert printer.step_complete("Tactic selection", step) is True
    printer.phase_finish("Tactic selection")
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("] Building engine (2 steps)")
    assert lines[1].endswith("]   Tactic selection (40 steps)")
    assert [line.split("] ")[1].strip() for line in lines[2:]] == ["Tactic selection: step 1/40"]
