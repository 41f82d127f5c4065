"""The builder's TensorRT calls against a stand-in ``tensorrt`` module that records them.

What a real build does with these calls is only checked on a GPU host (scripts/gpu_check.sh);
here we check which calls are made with which values for TensorRT 10 (FP16 builder flag) and
TensorRT 11 (no flag: strongly typed network), and how failures are reported.
"""

import io
import types

import pytest

from engine_builder import builder
from service.backends.tensorrt.errors import OnnxParseError, TensorRTError
from service.backends.tensorrt.sidecar import BatchProfile


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


class Enum:
    """A TensorRT enum member: identity matters, like pybind's enums (no bare strings accepted)."""

    def __init__(self, name, value):
        self.name, self.value = name, value

    def __int__(self):
        return self.value


def enum(**members):
    return types.SimpleNamespace(**{name: Enum(name, value) for name, value in members.items()})


def fake_tensorrt(has_fp16_flag: bool):
    """A stand-in ``tensorrt`` that fails the way NVIDIA documents: ``create_timing_cache`` -> None
    for bytes that are not a cache, ``add_optimization_profile`` -> -1 for an invalid profile,
    enums instead of strings, one positional signature per call."""
    calls = {"flags": [], "pools": {}, "profiles": [], "loggers": 0}

    class IProgressMonitor:
        def __init__(self):
            self.initialised = True  # pybind11 trampolines need the base __init__

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
                self.errors = [FakeParserError(3, "aspp/pool", "ReduceMean", "UNSUPPORTED_NODE",
                                               "axes must be constant"),
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
            return memoryview(self.data + b"+tuned")  # IHostMemory supports the buffer protocol

    class Config:
        progress_monitor = None
        cache = None

        def set_memory_pool_limit(self, pool, size):
            assert pool is trt.MemoryPoolType.WORKSPACE and isinstance(size, int)
            calls["pools"][pool.name] = size

        def set_flag(self, flag):
            assert isinstance(flag, Enum)
            calls["flags"].append(flag.name)

        def add_optimization_profile(self, profile):
            name, low, opt, high = profile.shapes
            if not all(a <= b <= c for a, b, c in zip(low, opt, high)) or profile.invalid:
                return -1
            calls["profiles"].append(profile.shapes)
            return len(calls["profiles"]) - 1

        def create_timing_cache(self, data):
            data = bytes(data)
            return None if data.startswith(b"corrupt") else TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            assert isinstance(cache, TimingCache) and ignore_mismatch is False
            if cache.data == b"foreign":
                return False
            self.cache = cache
            return True

    class Profile:
        invalid = False

        def set_shape(self, name, low, opt, high):
            self.shapes = (name, low, opt, high)

    class Logger:
        WARNING = Enum("WARNING", 2)

        def __init__(self, severity):
            assert severity is Logger.WARNING
            calls["loggers"] += 1

    class Builder:
        fail = False
        invalid_profile = False

        def __init__(self, logger):
            assert isinstance(logger, Logger)

        def create_network(self, flags):
            assert isinstance(flags, int)
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            profile = Profile()
            profile.invalid = Builder.invalid_profile
            return profile

        def build_serialized_network(self, network, config):
            monitor = config.progress_monitor
            assert monitor.initialised and config.cache is not None
            monitor.phase_start("Building engine", None, 2)
            monitor.phase_start("Tactic selection", "Building engine", 3)
            assert monitor.step_complete("Tactic selection", 0) is True
            monitor.phase_finish("Tactic selection")
            monitor.phase_finish("Building engine")
            return None if Builder.fail else b"PLAN"

    flags = {"TF32": 7, **({"FP16": 0} if has_fp16_flag else {})}
    trt = types.ModuleType("tensorrt")  # hashable like the real module
    trt.BuilderFlag = enum(**flags)
    # TensorRT 10: STRONGLY_TYPED = 1 (EXPLICIT_BATCH = 0); 11 renumbered it to 0, deprecated
    trt.NetworkDefinitionCreationFlag = enum(STRONGLY_TYPED=1 if has_fp16_flag else 0)
    trt.MemoryPoolType = enum(WORKSPACE=0)
    trt.Logger, trt.IProgressMonitor, trt.Builder, trt.OnnxParser = Logger, IProgressMonitor, Builder, OnnxParser
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
    assert calls["network_flags"] == 1 << 0
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


def test_a_corrupt_timing_cache_is_replaced_not_passed_on_as_none(tmp_path):
    trt, _ = fake_tensorrt(has_fp16_flag=True)
    out = io.StringIO()
    build = request(tmp_path, cache=b"corrupt\0\0")
    assert builder.build_serialized_engine(trt, build, builder.ProgressPrinter(out, interval=0)) == b"PLAN"
    assert "not a TensorRT timing cache" in out.getvalue()
    assert build.timing_cache.read_bytes() == b"+tuned"  # a fresh cache, written whole
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_invalid_optimisation_profile_is_an_error(tmp_path):
    trt, _ = fake_tensorrt(has_fp16_flag=True)
    trt.Builder.invalid_profile = True
    with pytest.raises(TensorRTError, match="rejected the optimisation profile"):
        builder.build_serialized_engine(trt, request(tmp_path), quiet())


def test_builds_share_one_logger(tmp_path):
    trt, calls = fake_tensorrt(has_fp16_flag=True)
    for _ in range(2):
        builder.build_serialized_engine(trt, request(tmp_path), quiet())
    assert calls["loggers"] == 1


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
