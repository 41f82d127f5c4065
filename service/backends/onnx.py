"""ONNX Runtime backends: the CUDA execution provider where there is one, the CPU one everywhere.

Memory: a session's arena keeps whatever it grew to. The registry warms every model up at the
largest batch it will ever run, so the arena reaches its working size once and load cannot grow
it past that. `arena_shrinkage` (off by default) additionally hands growth back after every run,
for memory-tight hosts: measured, it costs ~25% CPU throughput (docs/benchmarks.md). The CUDA
arena grows by exactly what is requested (`kSameAsRequested`), never to the next power of two.

INT8 on x86: without VNNI, ONNX Runtime's kernels sum pairs of uint8 x int8 products in int16 with
saturation, which full 8-bit weights overflow (measured -0.02 mIoU / Dice). `training.quantize` keeps weights
to 7 bits by default; an INT8 file whose card says otherwise gets a warning at load on such a CPU.

Threads on CPU: one run alone gets every core (latency), but runs side by side on one all-core
session contend for the same threads, and each waits at every operator's parallel barrier. So a
run that starts while another is in inference goes to a second session whose runs get a share of
the cores each (`--onnx.split-cores`): measured 1.07-1.19x the throughput at 8 clients on 2 cores.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort

from modelcard.card import ModelCard, Precision, verify_onnx
from modelcard.onnx_runner import CPU_PROVIDER, open_session
from service.backends.base import Backend, InferenceResult, side_by_side
from service.settings import BackendName, OnnxSettings

CUDA_PROVIDER = "CUDAExecutionProvider"
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")  # x86 dot-product instructions ONNX Runtime's INT8 kernels use
X86_MACHINES = {"x86_64", "amd64", "i386", "i686"}

log = logging.getLogger(__name__)


def session_options_for(options: OnnxSettings) -> ort.SessionOptions:
    """The session options the settings ask for (the benchmarks' raw loop builds its session with these too)."""
    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = options.intra_op_threads
    session_options.inter_op_num_threads = options.inter_op_threads
    session_options.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.spinning else "0")
    session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session_options.enable_cpu_mem_arena = options.cpu_mem_arena
    session_options.log_severity_level = 3
    return session_options


class OnnxBackend(Backend):
    """One ONNX Runtime session for one model card, on its FP32 file or its INT8 variant."""

    max_concurrent_runs = 4  # InferenceSession.run is thread-safe

    def __init__(self, card: ModelCard, options: OnnxSettings, use_cuda: bool, precision: Precision = "fp32"):
        self.name = BackendName.ONNX_CUDA if use_cuda else BackendName.ONNX_CPU
        self.precision = precision
        # The registry checked the FP32 file's hash before loading; the INT8 one is checked here.
        self._path = verify_onnx(card, precision) if precision == "int8" else card.onnx_path
        self.max_batch_size = options.max_batch_size
        self._input_name = card.input.name
        self._labels_name = card.outputs.labels.name
        self._probabilities_name = card.outputs.probabilities.name
        self._input_shape = (card.input.height, card.input.width, card.input.channels)

        session_options = session_options_for(options)
        providers: list = [CPU_PROVIDER]
        if use_cuda:
            cuda_options = {
                "device_id": options.cuda_device_id,
                "arena_extend_strategy": options.arena_extend_strategy,
                "cudnn_conv_algo_search": "HEURISTIC",
            }
            providers.insert(0, (CUDA_PROVIDER, cuda_options))
        if precision == "int8" and not use_cuda and (warning := int8_saturation_warning(card)):
            log.warning(warning)
        self._session = open_session(self._path, session_options, providers)
        if use_cuda and self._session.get_providers()[0] != CUDA_PROVIDER:
            raise RuntimeError(f"ONNX Runtime could not place {card.name} on CUDA device {options.cuda_device_id}")
        self._check_signature()
        self._options = options
        self._use_cuda = use_cuda
        self._sharing_session: ort.InferenceSession | None = None  # for runs that start beside another; prepare()
        self._runs_lock = threading.Lock()
        self._runs_in_flight = 0

        self._run_options = ort.RunOptions()
        shrink = ([f"gpu:{options.cuda_device_id}"] if use_cuda else []) + (["cpu:0"] if options.cpu_mem_arena else [])
        if options.arena_shrinkage and shrink:
            self._run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", ";".join(shrink))

    def _check_signature(self) -> None:
        """The graph has the inputs and outputs the card promises (fail at load, not per request)."""
        inputs = {node.name: node for node in self._session.get_inputs()}
        outputs = {node.name for node in self._session.get_outputs()}
        if self._input_name not in inputs:
            raise ValueError(f"{self._path}: no input {self._input_name!r} (has {sorted(inputs)})")
        node = inputs[self._input_name]
        if node.type != "tensor(uint8)" or list(node.shape[1:]) != list(self._input_shape):
            raise ValueError(
                f"{self._path}: input {node.name!r} is {node.type} {node.shape}, "
                f"the card says uint8 [N, {', '.join(map(str, self._input_shape))}]"
            )
        for name in (self._labels_name, self._probabilities_name):
            if name not in outputs:
                raise ValueError(f"{self._path}: no output {name!r} (has {sorted(outputs)})")

    def infer(self, images: np.ndarray, want_probabilities: bool) -> InferenceResult:
        if images.dtype != np.uint8 or images.shape[1:] != self._input_shape:
            raise ValueError(f"expected uint8 [N, {self._input_shape}], got {images.dtype} {images.shape}")
        if not 1 <= len(images) <= self.max_batch_size:
            raise ValueError(f"batch of {len(images)} outside 1..{self.max_batch_size}")
        with self._runs_lock:
            alone = self._runs_in_flight == 0
            self._runs_in_flight += 1
        try:
            session = self._session if alone or self._sharing_session is None else self._sharing_session
            return self._run(session, images, want_probabilities)
        finally:
            with self._runs_lock:
                self._runs_in_flight -= 1

    def prepare(self, images: np.ndarray, concurrent_runs: int) -> InferenceResult:
        """With the cores split: one run on the all-core session (it only ever runs alone), then the sharing
        session, opened here, warmed with `concurrent_runs` runs side by side; else the base class's warm-up."""
        threads = self.sharing_threads(concurrent_runs)
        if threads is None:
            return super().prepare(images, concurrent_runs)
        result = self._run(self._session, images, want_probabilities=True)
        sharing = open_session(self._path, session_options_for(self._options.model_copy(
            update={"intra_op_threads": threads})))
        side_by_side(lambda: self._run(sharing, images, want_probabilities=True), concurrent_runs)
        self._sharing_session = sharing
        return result

    def sharing_threads(self, concurrent_runs: int) -> int | None:
        """Intra-op threads per run when `concurrent_runs` runs share the cores, or None where no second session
        pays: CUDA, the split turned off, one run at a time, or too few threads to split."""
        if self._use_cuda or not self._options.split_cores or concurrent_runs < 2:
            return None
        all_threads = self._options.intra_op_threads or usable_cores()
        share = max(1, all_threads // concurrent_runs)
        return share if share < all_threads else None

    def _run(self, session: ort.InferenceSession, images: np.ndarray, want_probabilities: bool) -> InferenceResult:
        names = [self._labels_name] + ([self._probabilities_name] if want_probabilities else [])
        results = session.run(names, {self._input_name: images}, self._run_options)
        return InferenceResult(labels=results[0], probabilities=results[1] if want_probabilities else None)

    def close(self) -> None:
        del self._session
        self._sharing_session = None


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def int8_instructions() -> list[str]:
    """Which of INT8_FLAGS this CPU reports (empty: INT8 GEMMs take the AVX2/AVX-512 paths)."""
    cpuinfo = Path("/proc/cpuinfo")
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("flags")), []) if cpuinfo.is_file() else []
    return [flag for flag in INT8_FLAGS if flag in flags]


def int8_saturation_warning(card: ModelCard) -> str | None:
    """Why this x86 CPU will run `card`'s INT8 file less accurately than measured (full-range weights, no
    VNNI), or None: the file keeps to 7 bits, the CPU has VNNI, or the CPU is not x86."""
    recipe = card.quantization.get("onnx_int8")
    if recipe is None or recipe.reduce_range or platform.machine().lower() not in X86_MACHINES:
        return None
    if int8_instructions() or not Path("/proc/cpuinfo").is_file():  # VNNI, or no way to tell: assume it is fine
        return None
    return (f"{card.name}: its INT8 file has full 8-bit weights and this CPU has no VNNI ({', '.join(INT8_FLAGS)}), "
            "so ONNX Runtime's int16 pair sums saturate and accuracy drops (about 0.02 mIoU / Dice on the bundled "
            f"models); re-quantize with 7-bit weights: python -m training.quantize --card {card.path}")


def cuda_unavailable(card: ModelCard) -> str | None:
    """Why the CUDA provider cannot run this card here, or None."""
    if CUDA_PROVIDER not in ort.get_available_providers():
        return "this ONNX Runtime build has no CUDA execution provider (install the gpu extra)"
    return None


def cpu_unavailable(card: ModelCard) -> str | None:
    """Why the CPU provider cannot run this card here (a build without it), or None."""
    if CPU_PROVIDER not in ort.get_available_providers():
        return "this ONNX Runtime build has no CPU execution provider"
    return None
