"""A request's path, top to bottom: decode -> letterbox -> batch/infer -> (CRF) -> original size -> encode.

Every CPU-heavy step runs off the event loop (decode, resize and encode in the default thread
pool, inference in the model's batcher thread, CRF in worker processes), so one slow request
never stalls the others. Every output format (service/formats.py) and the v2 API
(service/v2_inference.py) go through this one path, `label_image()`; a format only says whether it
needs the probabilities and the decoded image.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
from PIL import Image

from service import telemetry
from service.batching import BatchOutput
from service.crf import CrfPool
from service.formats import OutputOptions, Prediction, SegmentationResult, encode
from service.imaging import crop_to_image, decode_image, restore_labels
from service.registry import ReadyModel
from service.settings import DriftSettings
from service.telemetry import Timings
from service.uncertainty import image_statistics
from training.letterbox import Placement, letterbox, restore_probabilities


@dataclass(frozen=True)
class _Prepared:
    size: tuple[int, int]  # (height, width) of the decoded image, EXIF applied
    canvas: np.ndarray  # the model input
    placement: Placement  # where the image sits in it
    image: Image.Image | None  # the decoded RGB image, kept only for formats that draw on it


async def segment(
    model: ReadyModel,
    data: bytes,
    *,
    options: OutputOptions,
    refine: bool,
    crf_pool: CrfPool,
    max_image_pixels: int,
    drift: DriftSettings,
    timings: Timings,
) -> SegmentationResult:
    """Segment one encoded image with `model` and encode the result at the image's own size."""
    image = await label_image(model, data, refine=refine,
                              want_probabilities=options.needs_probabilities or drift.enabled,
                              keep_image=options.needs_image, crf_pool=crf_pool, max_image_pixels=max_image_pixels,
                              timings=timings)
    with timings.measure("encode"):
        return await asyncio.to_thread(_finish, image, model, options, drift)


@dataclass(frozen=True)
class ImageLabels:
    """One encoded image through decode -> letterbox -> batch/infer -> (CRF), before it is mapped back."""

    prepared: _Prepared
    output: BatchOutput  # the model's output for the whole letterboxed input
    marginals: np.ndarray | None  # float32 [h, w, C]: the CRF's refinement of the image's part, when refined

    @property
    def labels(self) -> np.ndarray:
        """uint8 [h, w]: the model's labels for the image's part of its input."""
        return crop_to_image(self.output.labels, self.prepared.placement)

    @property
    def probabilities(self) -> np.ndarray | None:
        """float32 [h, w, C]: the model's probabilities for that part, when asked for."""
        probabilities = self.output.probabilities
        return None if probabilities is None else crop_to_image(probabilities, self.prepared.placement)


async def label_image(
    model: ReadyModel,
    data: bytes,
    *,
    refine: bool,
    want_probabilities: bool,
    keep_image: bool,
    crf_pool: CrfPool,
    max_image_pixels: int,
    timings: Timings,
) -> ImageLabels:
    """The pipeline up to the output at model resolution: shared by /segment and the v2 API."""
    prepared = await asyncio.to_thread(_prepare, data, model.card.input_size, max_image_pixels, keep_image, timings)
    output = await model.batcher.submit(prepared.canvas, want_probabilities=refine or want_probabilities)
    timings.record("queue", output.queue_s)
    timings.record("infer", output.infer_s)
    image = ImageLabels(prepared, output, None)
    if not refine:
        return image
    with timings.measure("crf"):
        marginals = await crf_pool.refine(crop_to_image(prepared.canvas, prepared.placement), image.probabilities)
    return ImageLabels(prepared, output, marginals)


def _prepare(data: bytes, input_size: tuple[int, int], max_image_pixels: int, keep_image: bool,
             timings: Timings) -> _Prepared:
    """Decode and letterbox in one trip to the thread pool (every trip is a hand-off under load)."""
    with timings.measure("decode"):
        image = decode_image(data, max_image_pixels)
    with timings.measure("preprocess"):
        canvas, placement = letterbox(image, input_size)
    return _Prepared((image.height, image.width), canvas, placement, image if keep_image else None)


def _finish(image: ImageLabels, model: ReadyModel, options: OutputOptions, drift: DriftSettings
            ) -> SegmentationResult:
    """Record the drift signals of the model's own output (when enabled; before any CRF), then the image's
    part of the (refined) output -> the original size (the rule in service/formats.py) -> encoded."""
    prepared, card = image.prepared, model.card
    if drift.enabled:
        statistics = image_statistics(image.probabilities, image.labels, card.num_classes)
        telemetry.record_image(card.name, model.version, card.class_names, statistics.area_fractions,
                               statistics.mean_confidence, drift.low_confidence_threshold)
    probabilities = image.probabilities if image.marginals is None else image.marginals
    if options.needs_probabilities:  # labels from the restored probabilities
        whole = Placement(0, 0, *probabilities.shape[:2])  # already cropped to the image
        probabilities = restore_probabilities(probabilities, whole, prepared.size)
        labels = probabilities.argmax(axis=-1).astype(np.uint8)
    else:
        labels = image.labels if image.marginals is None else image.marginals.argmax(axis=-1).astype(np.uint8)
        labels, probabilities = restore_labels(labels, prepared.size), None
    return encode(Prediction(labels, probabilities, prepared.image), card, options)
