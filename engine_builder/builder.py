"""Build a serialized TensorRT engine from an ONNX file: parser, profile, precision, timing cache.

Precision is detected from the installed TensorRT, not its version string:
- ``BuilderFlag.FP16`` exists (TensorRT 10.x and older): parse the FP32 ONNX and set the flag;
  TensorRT picks FP16 kernels per layer where they are faster and keeps FP32 elsewhere.
- it does not (TensorRT 11+, weak typing removed): the caller passes the FP16 ONNX from
  ``engine_builder.fp16`` and the network is built strongly typed, so the graph's types rule.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from service.backends.tensorrt.errors import OnnxParseError, TensorRTError
from service.backends.tensorrt.files import write_atomically
from service.backends.tensorrt.host import shared_logger
from service.backends.tensorrt.sidecar import BatchProfile

BUILDER_FLAG = "builder-flag"
STRONGLY_TYPED = "strongly-typed"


def fp16_mode(trt) -> str:
    """How this TensorRT builds FP16: with the builder flag, or from an FP16 strongly typed graph."""
    return BUILDER_FLAG if hasattr(trt.BuilderFlag, "FP16") else STRONGLY_TYPED


def network_flags(trt, strongly_typed: bool) -> int:
    """``create_network`` flags; STRONGLY_TYPED is required on 10.x and accepted (a no-op) on 11.x."""
    if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


def describe_parser_error(error) -> str:
    """One line per ONNX parser error: node, operator, code and TensorRT's description."""
    parts = []
    node_name = getattr(error, "node_name", lambda: "")()
    operator = getattr(error, "node_operator", lambda: "")()
    if node_name or operator:
        parts.append(f"node {node_name or error.node()} ({operator or '?'})")
    elif error.node() >= 0:
        parts.append(f"node #{error.node()}")
    parts.append(f"{error.code()}: {error.desc()}")
    return " ".join(parts)


class ProgressPrinter:
    """Prints the builder's phases as an indented tree; steps at most every ``interval`` seconds.

    TensorRT calls these from its own threads while ``build_serialized_network`` runs, which can
    take minutes on a large graph: without this a user sees nothing and assumes a hang.
    """

    def __init__(self, stream: TextIO = sys.stdout, interval: float = 2.0, clock=time.monotonic):
        self._stream, self._interval, self._clock = stream, interval, clock
        self._lock = threading.Lock()
        self._phases: dict[str, tuple[int, int]] = {}  # name -> (depth, steps)
        self._last_print = float("-inf")
        self._started = clock()

    def _print(self, depth: int, text: str) -> None:
        self._stream.write(f"[{self._clock() - self._started:7.1f}s] {'  ' * depth}{text}\n")
        self._stream.flush()

    def note(self, text: str) -> None:
        with self._lock:
            self._print(0, text)

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        with self._lock:
            depth = self._phases[parent_phase][0] + 1 if parent_phase in self._phases else 0
            self._phases[phase_name] = (depth, num_steps)
            self._print(depth, f"{phase_name} ({num_steps} steps)")

    def step_complete(self, phase_name: str, step: int) -> bool:
        with self._lock:
            now = self._clock()
            if phase_name in self._phases and now - self._last_print >= self._interval:
                depth, steps = self._phases[phase_name]
                self._print(depth + 1, f"{phase_name}: step {step + 1}/{steps}")
                self._last_print = now
        return True  # False would cancel the build

    def phase_finish(self, phase_name: str) -> None:
        with self._lock:
            self._phases.pop(phase_name, None)


def progress_monitor(trt, printer: ProgressPrinter):
    """A ``trt.IProgressMonitor`` forwarding to ``printer`` (None where TensorRT lacks the API)."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            printer.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            return printer.step_complete(phase_name, step)

        def phase_finish(self, phase_name):
            printer.phase_finish(phase_name)

    return Monitor()


@dataclass(frozen=True)
class BuildRequest:
    onnx_path: Path  # FP32 ONNX, or the FP16 ONNX when strongly_typed
    input_name: str
    profile: BatchProfile
    workspace_mb: int
    fp16_flag: bool  # set BuilderFlag.FP16 (TensorRT 10.x FP16 path)
    strongly_typed: bool
    timing_cache: Path | None


def build_serialized_engine(trt, request: BuildRequest, printer: ProgressPrinter) -> bytes:
    """Parse, configure and build; returns the plan bytes and updates the timing cache file."""
    logger = shared_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, request.strongly_typed))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(request.onnx_path)):
        errors = [describe_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
        raise OnnxParseError(f"TensorRT could not parse {request.onnx_path} "
                             f"({len(errors)} error(s)):\n  " + "\n  ".join(errors or ["no details"]))
    inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    if inputs != [request.input_name]:
        raise OnnxParseError(f"{request.onnx_path}: expected one input {request.input_name!r} "
                             f"(see the model card), the graph has {inputs}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, request.workspace_mb << 20)
    if request.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape(request.input_name, *(request.profile.shapes[k] for k in ("min", "opt", "max")))
    if config.add_optimization_profile(profile) < 0:  # -1: the profile is not valid for this network
        raise TensorRTError(f"TensorRT rejected the optimisation profile {request.profile.shapes} for input "
                            f"{request.input_name!r} of {request.onnx_path}")
    monitor = progress_monitor(trt, printer)
    if monitor is not None:
        config.progress_monitor = monitor
    timing_cache = attach_timing_cache(config, request.timing_cache, printer)  # held: must outlive the build

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TensorRTError(f"TensorRT failed to build an engine from {request.onnx_path}; "
                            "the TensorRT messages above say why (often: workspace too small, "
                            "try --workspace-mb 4096)")
    if request.timing_cache is not None:
        write_atomically(request.timing_cache, bytes(timing_cache.serialize()))  # the builder updated it
    return bytes(serialized)


def attach_timing_cache(config, path: Path | None, printer: ProgressPrinter):
    """Attach (and return) the timing cache from ``path``; a fresh one when the file is absent,
    unreadable as a cache (``create_timing_cache`` returns None, as NVIDIA's cacheUtils.cpp
    checks) or from another GPU/TensorRT (``set_timing_cache`` returns False)."""
    if path is not None and path.is_file():
        cache = config.create_timing_cache(path.read_bytes())
        if cache is None:
            printer.note(f"timing cache {path} is not a TensorRT timing cache (corrupt or truncated); starting afresh")
        elif config.set_timing_cache(cache, ignore_mismatch=False):
            return cache
        else:
            printer.note(f"timing cache {path} is from another GPU or TensorRT; starting afresh")
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        raise TensorRTError("TensorRT could not create an empty timing cache")
    return cache

