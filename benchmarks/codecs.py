"""Per-request costs outside the model: our COCO RLE encoder vs pycocotools, PNG encoding, and dense CRF
against one inference, each timed in-process on real label maps and images."""

from __future__ import annotations

import io
import timeit
from dataclasses import dataclass

import numpy as np
from PIL import Image

from modelcard.card import ModelCard
from modelcard.geometry import letterbox
from service.crf import refine
from service.encoding import PNG_COMPRESS_LEVEL, encode_png, encode_rle
from service.settings import CRF_PRESETS, DEFAULT_CRF_PRESET, CrfSettings


@dataclass(frozen=True)
class Timing:
    name: str
    seconds: float  # best per-call time over the repeats
    detail: str = ""


def best_time(call, repeat: int) -> float:
    """Seconds per call: the best of `repeat` rounds, each long enough to time (timeit's autorange)."""
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number


def pycocotools_rle(labels: np.ndarray) -> dict[int, tuple[int, str]]:
    """What a caller of pycocotools does for a label map: one binary mask per class present, then encode."""
    from pycocotools import mask as coco_mask

    ids = np.unique(labels)
    binary = np.asfortranarray((labels[:, :, None] == ids[None, None, :]).astype(np.uint8))
    encoded = coco_mask.encode(binary)
    return {int(i): (int(coco_mask.area(rle)), rle["counts"].decode()) for i, rle in zip(ids, encoded, strict=True)}


def rle_comparison(label_maps: dict[str, np.ndarray], repeat: int) -> list[tuple[str, Timing, Timing, Timing]]:
    """Per label map: ours, pycocotools including the binary masks, pycocotools' encode alone."""
    from pycocotools import mask as coco_mask

    rows = []
    for name, labels in label_maps.items():
        if encode_rle(labels) != pycocotools_rle(labels):
            raise AssertionError(f"{name}: our RLE differs from pycocotools'")  # the comparison must be like for like
        ids = np.unique(labels)
        binary = np.asfortranarray((labels[:, :, None] == ids[None, None, :]).astype(np.uint8))
        detail = f"{labels.shape[1]}x{labels.shape[0]}, {len(ids)} classes"
        rows.append((
            name,
            Timing("ours", best_time(lambda: encode_rle(labels), repeat), detail),
            Timing("pycocotools (masks + encode)", best_time(lambda: pycocotools_rle(labels), repeat), detail),
            Timing("pycocotools (encode only)", best_time(lambda: coco_mask.encode(binary), repeat), detail),
        ))
    return rows


def png_costs(label_maps: dict[str, np.ndarray], palette, repeat: int) -> list[tuple[str, str, float, int]]:
    """(label map, encoder, seconds, bytes): the service's `encode_png` at its level, and the same indexed
    PNG at PIL's default and maximum levels for comparison."""
    rows = []
    for name, labels in label_maps.items():
        image = Image.fromarray(labels)
        image.putpalette([channel for colour in palette for channel in colour])
        rows.append((name, f"service encode_png (zlib level {PNG_COMPRESS_LEVEL})",
                     best_time(lambda: encode_png(labels, palette), repeat),
                     len(encode_png(labels, palette))))
        for level in (6, 9):
            def save(level=level) -> bytes:
                buffer = io.BytesIO()
                image.save(buffer, format="PNG", compress_level=level)
                return buffer.getvalue()

            rows.append((name, f"PIL, zlib level {level}", best_time(save, repeat), len(save())))
    return rows


def crf_vs_inference(session, card: ModelCard, image: np.ndarray, repeat: int) -> list[Timing]:
    """At the model's input size: inference fetching labels only, fetching probabilities too, and the CRF with
    each preset on those probabilities (the one this model's CRF starts from first)."""
    canvas, _ = letterbox(image, card.input_size)
    feed = {card.input.name: canvas[None]}
    labels_only = [card.outputs.labels.name]
    both = [card.outputs.labels.name, card.outputs.probabilities.name]
    probabilities = session.run(both, feed)[1][0]
    size = f"{card.input.width}x{card.input.height}"
    default = card.crf_preset or DEFAULT_CRF_PRESET  # what a default service refines this model with
    crf = []
    for preset in sorted(CRF_PRESETS, key=lambda name: name != default):
        params = CrfSettings(preset=preset)
        crf.append(Timing(f"dense CRF, preset {preset}{' (default)' if preset == default else ''}: scale "
                          f"{params.scale:g}, {params.iterations} iterations",
                          best_time(lambda params=params: refine(canvas, probabilities, params), repeat), size))
    return [
        Timing("inference (labels)", best_time(lambda: session.run(labels_only, feed), repeat), size),
        Timing("inference (labels + probabilities)", best_time(lambda: session.run(both, feed), repeat), size),
        *crf,
    ]
