"""A request's path, top to bottom: decode -> letterbox -> batch/infer -> (CRF) -> original size -> encode.

Every CPU-heavy step runs off the event loop (decode, resize and encode in the default thread
pool, inference in the model's batcher thread, CRF in worker processes), so one slow request
never stalls the others. Every output format (service/formats.py) goes through this one path;
a format only says whether it needs the probabilities and the decoded image.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
from PIL import Image

from service import telemetry
from service.crf import CrfPool
from service.formats import OutputOptions, Prediction, SegmentationResult, encode
from service.imaging import crop_to_image, decode_image, restore_labels
from service.registry import ModelEntry
from service.settings import DriftSettings
from service.telemetry import Timings
from service.uncertainty import image_statistics
from training.letterbox import Placement, letterbox, restore_probabilities
from training.model_card import ModelCard


@dataclass(frozen=True)
class _Prepared:
    size: tuple[int, int]  # (height, width) of the decoded image, EXIF applied
    canvas: np.ndarray  # the model input
    placement: Placement  # where the image sits in it
    image: Image.Image | None  # the decoded RGB image, kept only for formats that draw on it


async def segment(
    model: ModelEntry,
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
    card = model.card
    prepared = await asyncio.to_thread(_prepare, data, card.input_size, max_image_pixels, options.needs_image, timings)
    want_probabilities = refine or options.needs_probabilities or drift.enabled
    output = await model.batcher.submit(prepared.canvas, want_probabilities=want_probabilities)
    timings.record("queue", output.queue_s)
    timings.record("infer", output.infer_s)
    labels = crop_to_image(output.labels, prepared.placement)
    probabilities = crop_to_image(output.probabilities, prepared.placement) if want_probabilities else None
    model_view = (labels, probabilities) if drift.enabled else None  # the drift signals read it before any CRF
    if refine:
        with timings.measure("crf"):
            probabilities = await crf_pool.refine(crop_to_image(prepared.canvas, prepared.placement), probabilities)
        labels = None  # the marginals' argmax, taken off the event loop in _finish
    with timings.measure("encode"):
        return await asyncio.to_thread(_finish, labels, probabilities, prepared, card, options, model_view,
                                       drift.low_confidence_threshold)


def _prepare(data: bytes, input_size: tuple[int, int], max_image_pixels: int, keep_image: bool,
             timings: Timings) -> _Prepared:
    """Decode and letterbox in one trip to the thread pool (every trip is a hand-off under load)."""
    with timings.measure("decode"):
        image = decode_image(data, max_image_pixels)
    with timings.measure("preprocess"):
        canvas, placement = letterbox(image, input_size)
    return _Prepared((image.height, image.width), canvas, placement, image if keep_image else None)


def _finish(labels: np.ndarray | None, probabilities: np.ndarray | None, prepared: _Prepared, card: ModelCard,
            options: OutputOptions, model_view: tuple[np.ndarray, np.ndarray] | None,
            low_confidence_threshold: float) -> SegmentationResult:
    """Record the drift signals of the model's own output (`model_view`, when enabled), then the image's
    part of the (refined) output -> the original size (the rule in service/formats.py) -> encoded."""
    if model_view is not None:
        statistics = image_statistics(model_view[1], model_view[0], card.num_classes)
        telemetry.record_image(card.name, card.class_names, statistics.area_fractions, statistics.mean_confidence,
                               low_confidence_threshold)
    if options.needs_probabilities:  # labels from the restored probabilities
        whole = Placement(0, 0, *probabilities.shape[:2])  # already cropped to the image
        probabilities = restore_probabilities(probabilities, whole, prepared.size)
        labels = probabilities.argmax(axis=-1).astype(np.uint8)
    else:
        labels = probabilities.argmax(axis=-1).astype(np.uint8) if labels is None else labels
        labels, probabilities = restore_labels(labels, prepared.size), None
    return encode(Prediction(labels, probabilities, prepared.image), card, options)
