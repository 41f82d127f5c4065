"""The one interface every inference engine implements (ONNX Runtime, TensorRT).

The batcher hands a backend a uint8 NHWC batch at the card's input size and gets class ids back;
probabilities are fetched only when asked for (the drift signals, CRF, probability formats; see
service/segmentation.py), since on a GPU copying [N, H, W, C] float32 off the device costs more
than the argmax the graph already did.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from service.settings import BackendName


@dataclass(frozen=True)
class InferenceResult:
    labels: np.ndarray  # uint8 [N, H, W]
    probabilities: np.ndarray | None  # float32 [N, H, W, C], only when asked for


class Backend(ABC):
    """A loaded model on one engine. `infer` runs on at most `max_concurrent_runs` threads at once."""

    name: BackendName  # never AUTO
    precision: str  # "fp32" | "fp16" | "int8"
    max_batch_size: int
    max_concurrent_runs: int = 1  # `infer` calls that may run at once from different threads

    @abstractmethod
    def infer(self, images: np.ndarray, want_probabilities: bool) -> InferenceResult:
        """images: uint8 [N, H, W, 3] at the card's input size, N <= max_batch_size."""

    def prepare(self, images: np.ndarray, concurrent_runs: int) -> InferenceResult:
        """Before traffic: run `images` (the largest batch the model will see) `concurrent_runs` times side by
        side, fetching the probabilities, so that every buffer load can need is allocated now (each run in
        flight holds its own activations). Returns one run's result for the caller's shape checks."""
        return side_by_side(lambda: self.infer(images, want_probabilities=True), concurrent_runs)

    @abstractmethod
    def close(self) -> None:
        """Release the engine's memory; the backend is unusable afterwards."""


def side_by_side(run: Callable[[], InferenceResult], times: int) -> InferenceResult:
    """`run` called `times` times at once from as many threads; the first call's result."""
    with ThreadPoolExecutor(times, thread_name_prefix="warm-up") as pool:
        return list(pool.map(lambda _: run(), range(times)))[0]
