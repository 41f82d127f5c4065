"""Choosing an engine for a model: `--backend auto|tensorrt|onnx-cuda|onnx-cpu`.

Each engine is a `BackendSpec`: a cheap availability check, a loader and its batching defaults.
`auto` walks `SPECS` in preference order and takes the first that loads; a named choice must load
or the model fails with the reason. An engine joins by adding its spec to `SPECS` (TensorRT goes
first: it is the fastest where a plan built for this GPU exists) and its name to `BackendName`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from modelcard.card import ModelCard
from service.backends.base import Backend, InferenceResult
from service.backends.onnx import OnnxBackend, cpu_unavailable, cuda_unavailable
from service.backends.tensorrt.backend import load_tensorrt, tensorrt_unavailable
from service.settings import BackendName, Settings

__all__ = ["SPECS", "Backend", "BackendSpec", "BackendUnavailable", "BatchDefaults", "InferenceResult", "load_backend",
           "spec_for"]

log = logging.getLogger(__name__)


class BackendUnavailable(RuntimeError):
    """No engine (or not the requested one) can serve a model here; the message says why."""


@dataclass(frozen=True)
class BatchDefaults:
    """The batching an engine gets where `--batching.max-batch-size`, `--batching.max-delay-ms` and
    `--batching.concurrent-batches` are not set."""

    max_batch_size: int
    max_delay_ms: float
    concurrent_batches: int = 1


@dataclass(frozen=True)
class BackendSpec:
    name: BackendName
    unavailable: Callable[[ModelCard, Settings], str | None]  # why it cannot serve this card here, None if it can
    load: Callable[[ModelCard, Settings], Backend]
    batching: BatchDefaults
    int8: bool = False  # runs the card's INT8 ONNX variant (`--precision int8`)


def _onnx(use_cuda: bool) -> Callable[[ModelCard, Settings], Backend]:
    return lambda card, settings: OnnxBackend(card, settings.onnx, use_cuda, settings.precision_for(card.name))


# Batching defaults, measured (docs/ARCHITECTURE.md, "Measured choices"): ONNX Runtime on CPU takes N times as
# long for a batch of N, so batching there only adds waiting: batch 1, no delay. GPUs run a batch of 8 in
# little more than the time of one, so a few milliseconds of delay buys throughput. On CPU, two batches in
# inference at once fill each other's serial stretches (and the time a request spends being decoded and encoded),
# and with the cores split between them (OnnxBackend, --onnx.split-cores) the service passed a raw 8-thread loop
# at 8 clients on polyp (1.03x, 1.05x) and reached it on camvid (1.04x, 0.99x) (docs/ARCHITECTURE.md).
SPECS: list[BackendSpec] = [
    BackendSpec(BackendName.TENSORRT, tensorrt_unavailable, load_tensorrt, BatchDefaults(8, 2.0)),
    BackendSpec(BackendName.ONNX_CUDA, lambda card, settings: cuda_unavailable(card), _onnx(use_cuda=True),
                BatchDefaults(8, 5.0), int8=True),
    BackendSpec(BackendName.ONNX_CPU, lambda card, settings: cpu_unavailable(card), _onnx(use_cuda=False),
                BatchDefaults(1, 0.0, concurrent_batches=2), int8=True),
]


def spec_for(name: BackendName) -> BackendSpec:
    """The spec of the engine called `name` (every name but AUTO has one): for `--backend <name>`, and for a
    loaded backend's batching defaults."""
    return next(spec for spec in SPECS if spec.name == name)


def load_backend(card: ModelCard, settings: Settings) -> Backend:
    """Load `card` on the engine `settings.backend` names, or on the best available one for `auto`
    (for an INT8 model: among the engines that run INT8 ONNX files)."""
    int8 = settings.precision_for(card.name) == "int8"
    if settings.backend != BackendName.AUTO:
        spec = spec_for(settings.backend)
        reason = ("it runs no INT8 ONNX files (--precision int8)" if int8 and not spec.int8
                  else spec.unavailable(card, settings))
        if reason is not None:
            raise BackendUnavailable(f"backend {spec.name} cannot serve {card.name}: {reason}")
        return spec.load(card, settings)
    reasons = []
    for spec in (spec for spec in SPECS if spec.int8 or not int8):
        reason = spec.unavailable(card, settings)
        if reason is None:
            try:
                return spec.load(card, settings)
            except Exception as exc:  # noqa: BLE001 - auto falls through to the next engine, keeping why
                reason = f"failed to load: {exc}"
        # said at warning level: a GPU host that ends up on ONNX Runtime must say why, not stay silent
        log.warning("%s: not on %s: %s", card.name, spec.name, reason)
        reasons.append(f"{spec.name}: {reason}")
    raise BackendUnavailable(f"no backend can serve {card.name}: " + "; ".join(reasons))
