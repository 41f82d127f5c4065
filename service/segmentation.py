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

from modelcard.card import ModelCard
from modelcard.geometry import Placement, crop, letterbox, needs_probabilities, resize_channels, restore
from service import telemetry
from service.batching import BatchOutput
from service.crf import CrfPool
from service.formats import OutputOptions, Prediction, SegmentationResult, encode
from service.imaging import decode_image
from service.registry import ReadyModel
from service.settings import DriftSettings
from service.telemetry import Timings
from service.uncertainty import image_statistics


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
        return crop(self.output.labels, self.prepared.placement)

    @property
    def probabilities(self) -> np.ndarray | None:
        """float32 [h, w, C]: the model's probabilities for that part, when asked for."""
        probabilities = self.output.probabilities
        return None if probabilities is None else crop(probabilities, self.prepared.placement)

    @property
    def answer_probabilities(self) -> np.ndarray | None:
        """float32 [h, w, C]: the CRF's marginals when refined, else the model's probabilities."""
        return self.probabilities if self.marginals is None else self.marginals

    def restored(self, card: ModelCard) -> tuple[np.ndarray, np.ndarray | None]:
        """The (refined) answer at the image's own size by the card's restore rule, the one its
        metrics were measured with: labels, and the probabilities when the rule restored them."""
        labels = self.labels if self.marginals is None else self.marginals.argmax(axis=-1).astype(np.uint8)
        return restore(card.outputs.restore, self.prepared.size, labels, self.answer_probabilities)


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
    card = model.card
    prepared = await asyncio.to_thread(_prepare, data, card, max_image_pixels, keep_image, timings)
    output = await model.batcher.submit(prepared.canvas, want_probabilities=refine or want_probabilities
                                        or needs_probabilities(card.outputs.restore))
    timings.record("queue", output.queue_s)
    timings.record("infer", output.infer_s)
    image = ImageLabels(prepared, output, None)
    if not refine:
        return image
    with timings.measure("crf"):
        marginals = await crf_pool.refine(crop(prepared.canvas, prepared.placement), image.probabilities,
                                          card.crf_preset)
    return ImageLabels(prepared, output, marginals)


def _prepare(data: bytes, card: ModelCard, max_image_pixels: int, keep_image: bool, timings: Timings) -> _Prepared:
    """Decode and letterbox in one trip to the thread pool (every trip is a hand-off under load)."""
    with timings.measure("decode"):
        image = decode_image(data, max_image_pixels)
    with timings.measure("preprocess"):
        canvas, placement = letterbox(image, card.input_size, card.input.resize.pad_value, card.exposure_target_mean)
    return _Prepared((image.height, image.width), canvas, placement, image if keep_image else None)


def _finish(image: ImageLabels, model: ReadyModel, options: OutputOptions, drift: DriftSettings
            ) -> SegmentationResult:
    """Record the drift signals of the model's own output (when enabled; before any CRF), then the image's
    part of the (refined) output -> the original size (the card's restore rule) -> encoded."""
    prepared, card = image.prepared, model.card
    if drift.enabled:
        statistics = image_statistics(image.probabilities, image.labels, card.num_classes)
        telemetry.record_image(card.name, model.version, card.class_names, statistics.area_fractions,
                               statistics.mean_confidence, drift.low_confidence_threshold)
    labels, probabilities = image.restored(card)
    if not options.needs_probabilities:
        probabilities = None
    elif probabilities is None:  # the rule resized the labels; the format wants the probabilities too
        probabilities = resize_channels(image.answer_probabilities, prepared.size)
    return encode(Prediction(labels, probabilities, prepared.image), card, options)
