"""The checks a conversion or an engine build ends with: label parity with the FP32 ONNX model
on real images, and latency/throughput at a given batch size."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from modelcard.geometry import letterbox
from modelcard.parity import Parity, ParityError, check, measure
from service.backends.tensorrt.errors import ParityFailure

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

Model = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # images -> (probabilities, labels)


def sample_images(recipe: dict, count: int, size: tuple[int, int],
                  images_dir: Path | None = None) -> np.ndarray:
    """``count`` real images letterboxed to ``size`` (as the service feeds them).

    From ``images_dir`` when given, else from the validation split of the dataset the model was
    trained on (the card's recipe), under ``$DEEPLAB_DATA_ROOT`` when the recipe's own data root
    does not exist on this host (e.g. in a container). FileNotFoundError if there are none.
    Only this fallback reads the training package's dataset readers (NumPy and Pillow, no TensorFlow).
    """
    if images_dir is None:
        from training.datasets.parity_images import validation_images

        root = recipe.get("data_root")
        return validation_images(recipe, count, size, root=root if root is not None and Path(root).exists() else None)
    paths = sorted(path for path in Path(images_dir).iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no {'/'.join(IMAGE_SUFFIXES)} images in {images_dir}")
    return np.stack([letterbox(_read_rgb(path), size)[0] for path in paths[:count]])


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def compare_labels(reference: Model, candidate: Model, images: np.ndarray, batch_size: int) -> Parity:
    """Run both models on the same images, ``batch_size`` at a time, and measure agreement."""
    outputs = []
    for model in (reference, candidate):
        chunks = [model(images[start:start + batch_size]) for start in range(0, len(images), batch_size)]
        outputs.append((np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])))
    return measure(outputs[0], outputs[1])


def require_agreement(parity: Parity, what: str, kind: str) -> None:
    """``modelcard.parity.check`` for ``kind``, failing as a build error (ParityFailure) that names ``what``."""
    try:
        check(kind, parity)
    except ParityError as error:
        raise ParityFailure(f"{what}: against the FP32 ONNX model, {error}") from None


@dataclass(frozen=True)
class Throughput:
    batch: int
    latency_ms_p50: float
    latency_ms_p90: float
    images_per_s: float

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return (f"batch {self.batch:>3}: p50 {self.latency_ms_p50:7.2f} ms, p90 "
                f"{self.latency_ms_p90:7.2f} ms, {self.images_per_s:8.1f} images/s")


def measure_throughput(run: Callable[[np.ndarray], object], images: np.ndarray, batch: int,
                       iterations: int = 30, warmup: int = 3,
                       clock: Callable[[], float] = time.perf_counter) -> Throughput:
    """Time ``run`` on one batch of ``batch`` images (the samples repeated to fill it)."""
    repeats = -(-batch // len(images))
    batch_images = np.ascontiguousarray(np.concatenate([images] * repeats)[:batch])
    for _ in range(warmup):
        run(batch_images)
    latencies = []
    for _ in range(iterations):
        start = clock()
        run(batch_images)
        latencies.append(clock() - start)
    deciles = statistics.quantiles(latencies, n=10) if len(latencies) > 1 else latencies * 9
    median = statistics.median(latencies)
    return Throughput(batch=batch, latency_ms_p50=median * 1e3, latency_ms_p90=deciles[8] * 1e3,
                      images_per_s=batch / median if median > 0 else float("inf"))
