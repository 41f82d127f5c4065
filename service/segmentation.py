"""A request's path, top to bottom: decode -> letterbox -> batch/infer -> (CRF) -> original size -> encode.

Every CPU-heavy step runs off the event loop (decode, resize and encode in the default thread
pool, inference in the model's batcher thread, CRF in worker processes), so one slow request
never stalls the others.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Literal

import numpy as np

from service.crf import CrfPool
from service.encoding import encode_png, encode_rle
from service.imaging import crop_to_image, decode_image, restore_labels
from service.registry import ModelEntry
from service.telemetry import Timings
from training.letterbox import Placement, letterbox
from training.model_card import ModelCard

OutputFormat = Literal["png", "rle"]


@dataclass(frozen=True)
class SegmentationResult:
    body: bytes
    media_type: str


async def segment(
    model: ModelEntry,
    data: bytes,
    *,
    output_format: OutputFormat,
    refine: bool,
    crf_pool: CrfPool,
    max_image_pixels: int,
    timings: Timings,
) -> SegmentationResult:
    """Segment one encoded image with `model` and encode the mask at the image's own size."""
    image = await label_image(model, data, refine=refine, want_probabilities=False, crf_pool=crf_pool,
                              max_image_pixels=max_image_pixels, timings=timings)
    with timings.measure("encode"):
        return await asyncio.to_thread(_encode, image.labels, image.size, model.card, output_format)


@dataclass(frozen=True)
class ImageLabels:
    """One encoded image through decode -> letterbox -> batch/infer -> (CRF), before it is mapped back."""

    size: tuple[int, int]  # the image's (height, width)
    labels: np.ndarray  # uint8 [h, w]: the image's part of the model input (CRF-refined when asked)
    probabilities: np.ndarray | None  # float32 [H, W, C]: the whole model output, when asked for


async def label_image(
    model: ModelEntry,
    data: bytes,
    *,
    refine: bool,
    want_probabilities: bool,
    crf_pool: CrfPool,
    max_image_pixels: int,
    timings: Timings,
) -> ImageLabels:
    """The pipeline up to the labels at model resolution: shared by /segment and the v2 API."""
    size, canvas, placement = await asyncio.to_thread(_prepare, data, model.card.input_size, max_image_pixels,
                                                      timings)
    output = await model.batcher.submit(canvas, want_probabilities=refine or want_probabilities)
    timings.record("queue", output.queue_s)
    timings.record("infer", output.infer_s)
    if refine:
        with timings.measure("crf"):
            labels = await crf_pool.refine(crop_to_image(canvas, placement),
                                           crop_to_image(output.probabilities, placement))
    else:
        labels = crop_to_image(output.labels, placement)
    return ImageLabels(size, labels, output.probabilities if want_probabilities else None)


def _prepare(
    data: bytes, input_size: tuple[int, int], max_image_pixels: int, timings: Timings
) -> tuple[tuple[int, int], np.ndarray, Placement]:
    """Decode and letterbox in one trip to the thread pool (every trip is a hand-off under load):
    the image's (height, width), the model input and where the image sits in it."""
    with timings.measure("decode"):
        image = decode_image(data, max_image_pixels)
    with timings.measure("preprocess"):
        canvas, placement = letterbox(image, input_size)
    return (image.height, image.width), canvas, placement


def _encode(
    labels: np.ndarray, size: tuple[int, int], card: ModelCard, output_format: OutputFormat
) -> SegmentationResult:
    """Map the image's labels back to `size` (height, width), then PNG or RLE."""
    mask = restore_labels(labels, size)
    if output_format == "png":
        return SegmentationResult(encode_png(mask, card.palette), "image/png")
    document = rle_document(mask, card)
    return SegmentationResult(json.dumps(document, separators=(",", ":")).encode(), "application/json")


def rle_document(mask: np.ndarray, card: ModelCard) -> dict:
    """`{model, width, height, classes: [{id, name, area, rle: {size, counts}}]}`, classes present only."""
    height, width = mask.shape
    return {
        "model": card.name,
        "width": width,
        "height": height,
        "classes": [
            {"id": class_id, "name": card.classes[class_id].name, "area": area,
             "rle": {"size": [height, width], "counts": counts}}
            for class_id, (area, counts) in sorted(encode_rle(mask).items())
        ],
    }
