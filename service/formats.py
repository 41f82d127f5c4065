"""The output formats of `POST /segment`: what each needs from the pipeline and how it is encoded.

Every format reads one `Prediction` at the original size; the pipeline (service/segmentation.py)
only asks which inputs the format needs. Labels follow the card's restore rule
(`outputs.restore`, `modelcard.geometry.restore`), the rule the card's metrics were measured with,
whatever the format; formats that return probabilities get them resized bilinearly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image

from modelcard.card import ModelCard
from service import polygons, uncertainty
from service.encoding import encode_grey_png, encode_npy, encode_png, encode_rle, quantise
from service.errors import ServiceError
from service.overlay import render_overlay
from service.polygons import PolygonOptions

OutputFormat = Literal["png", "rle", "probabilities", "uncertainty", "polygons", "overlay"]
JSON_FORMATS = ("rle", "polygons")
_PROBABILITY_FORMATS = ("probabilities", "uncertainty")
NPY_MEDIA_TYPE = "application/x-npy"


@dataclass(frozen=True)
class OutputOptions:
    """What the caller asked for; checked at construction (422 for a combination that means nothing)."""

    format: OutputFormat = "png"
    uncertainty: bool = False  # add the uncertainty summary to a JSON format
    polygon_options: PolygonOptions = field(default_factory=PolygonOptions)
    alpha: float = 0.5  # overlay: mask opacity
    outlines: bool = True  # overlay: draw class borders opaque

    def __post_init__(self) -> None:
        if self.uncertainty and self.format not in JSON_FORMATS:
            raise ServiceError(422, "invalid_request",
                               f"uncertainty=true adds fields to JSON answers ({', '.join(JSON_FORMATS)}), "
                               f"not to format={self.format}; use format=uncertainty for the map")

    @property
    def needs_probabilities(self) -> bool:
        return self.uncertainty or self.format in _PROBABILITY_FORMATS

    @property
    def needs_image(self) -> bool:
        return self.format == "overlay"


@dataclass(frozen=True)
class Prediction:
    """One image's result at its original size, as the encoders read it."""

    labels: np.ndarray  # uint8 [H, W]
    probabilities: np.ndarray | None  # float32 [H, W, C] when the options need them
    image: Image.Image | None  # the decoded RGB image when the options need it


@dataclass(frozen=True)
class SegmentationResult:
    body: bytes
    media_type: str


def encode(prediction: Prediction, card: ModelCard, options: OutputOptions) -> SegmentationResult:
    """The response body for `options.format`."""
    fmt = options.format
    if fmt == "png":
        return SegmentationResult(encode_png(prediction.labels, card.palette), "image/png")
    if fmt == "probabilities":
        return SegmentationResult(encode_npy(quantise(prediction.probabilities, prediction.labels)), NPY_MEDIA_TYPE)
    if fmt == "uncertainty":
        entropy = uncertainty.normalised_entropy(prediction.probabilities)
        return SegmentationResult(encode_grey_png(uncertainty.entropy_image(entropy)), "image/png")
    if fmt == "overlay":
        return SegmentationResult(render_overlay(prediction.image, prediction.labels, card.palette, options.alpha,
                                                 options.outlines), "image/jpeg")
    return SegmentationResult(json.dumps(document(prediction, card, options), separators=(",", ":")).encode(),
                              "application/json")


def document(prediction: Prediction, card: ModelCard, options: OutputOptions) -> dict:
    """The JSON answer of `rle` or `polygons`, with the uncertainty summary when asked for."""
    labels = prediction.labels
    height, width = labels.shape
    result: dict = {"model": card.name, "width": width, "height": height}
    if options.format == "rle":
        result["classes"] = rle_classes(labels, card)
    else:
        regions = polygons.trace(labels, options.polygon_options)
        result["tolerance"] = options.polygon_options.tolerance
        result["min_area"] = options.polygon_options.min_area
        result["classes"] = [
            {"id": class_id, "name": card.classes[class_id].name, "area": int((labels == class_id).sum()),
             "regions": [polygons.coco_region(polygon) for polygon in found]}
            for class_id, found in regions.items()
        ]
        result["geojson"] = polygons.geojson(regions, card.class_names)
    if options.uncertainty:
        entropy = uncertainty.normalised_entropy(prediction.probabilities)
        result["uncertainty"] = uncertainty.summary(entropy, labels, card.class_names)
    return result


def rle_classes(labels: np.ndarray, card: ModelCard) -> list[dict]:
    """`[{id, name, area, rle: {size, counts}}]` for the classes present."""
    height, width = labels.shape
    return [
        {"id": class_id, "name": card.classes[class_id].name, "area": area,
         "rle": {"size": [height, width], "counts": counts}}
        for class_id, (area, counts) in sorted(encode_rle(labels).items())
    ]
