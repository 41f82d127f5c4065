"""Fit an image into the model's fixed input, and map the model's answer back to the image's pixels.

Letterbox, not a plain resize: the image is scaled by one factor (aspect ratio kept, as in the
random-scale-and-crop training pipeline), centred and padded with mid-grey, the value the
training pipeline pads with (0 after normalisation). Black padding shifts the ASPP image-pooling
branch's global average and cost CamVid ~0.1 mIoU. The way back is one function, ``restore``,
used by evaluation and by the service alike, so the card's scores measure what ``/segment`` serves;
the card names the rule (``input.resize``, ``input.exposure``, ``outputs.restore``). Plain NumPy + Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from modelcard.exposure import normalise_exposure

PAD_VALUE = 128  # uint8 mid-grey: 0.004 after x / 127.5 - 1, the training pipeline's fill
RestoreMode = Literal["labels-nearest", "probabilities-bilinear"]
DEFAULT_RESTORE: RestoreMode = "labels-nearest"  # what new exports name; see docs/MODEL_CARD.md


@dataclass(frozen=True)
class Placement:
    """Where the scaled image sits inside the model input: rows top:top+height, cols left:left+width."""

    top: int
    left: int
    height: int
    width: int


def letterbox(image: np.ndarray | Image.Image, size: tuple[int, int], pad_value: int = PAD_VALUE,
              exposure_target_mean: float | None = None) -> tuple[np.ndarray, Placement]:
    """uint8 HxWx3 (or an RGB PIL image) -> uint8 ``size``x3 (bilinear scale, ``pad_value`` padding)
    and where the image went. With a target (the card's ``input.exposure``) the scaled image is
    exposure-normalised first (``modelcard.exposure``), the padding never."""
    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    target_height, target_width = size
    width, height = picture.size
    scale = min(target_height / height, target_width / width)
    scaled_height = max(1, min(target_height, round(height * scale)))
    scaled_width = max(1, min(target_width, round(width * scale)))
    scaled = np.asarray(picture.resize((scaled_width, scaled_height), Image.BILINEAR))
    if exposure_target_mean is not None:
        scaled = normalise_exposure(scaled, exposure_target_mean)
    top, left = (target_height - scaled_height) // 2, (target_width - scaled_width) // 2
    canvas = np.full((target_height, target_width, 3), pad_value, dtype=np.uint8)
    canvas[top:top + scaled_height, left:left + scaled_width] = scaled
    return canvas, Placement(top, left, scaled_height, scaled_width)


def crop(array: np.ndarray, placement: Placement) -> np.ndarray:
    """The image's part of a model-resolution array ([H, W] or [H, W, C]): the padding cut off."""
    return array[placement.top:placement.top + placement.height, placement.left:placement.left + placement.width]


def needs_probabilities(mode: RestoreMode) -> bool:
    """Whether ``restore`` under ``mode`` reads the probabilities (a server fetches them only then)."""
    return mode == "probabilities-bilinear"


def restore(mode: RestoreMode, size: tuple[int, int], labels: np.ndarray,
            probabilities: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The image's part of the model's answer (``crop``ped: uint8 labels [h, w], float probabilities
    [h, w, C]) -> uint8 labels at exactly ``size`` (height, width), by the card's rule:

    - ``labels-nearest``: the labels resized nearest-neighbour (no probabilities needed);
    - ``probabilities-bilinear``: every class channel resized bilinearly and the argmax taken at
      the original size (smoother class borders; needs the probabilities).

    Returns the labels and, for ``probabilities-bilinear``, the restored probabilities.
    """
    if mode == "labels-nearest":
        return resize_labels(labels, size), None
    if mode != "probabilities-bilinear":
        raise ValueError(f"unknown restore mode {mode!r}")
    if probabilities is None:
        raise ValueError("restore mode 'probabilities-bilinear' needs the probabilities")
    restored = resize_channels(probabilities, size)
    return restored.argmax(axis=-1).astype(np.uint8), restored


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 class ids [h, w] -> exactly ``size`` (height, width), nearest neighbour."""
    height, width = size
    resized = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8)).resize((width, height),
                                                                                   Image.Resampling.NEAREST)
    return np.asarray(resized)


def resize_channels(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float [h, w, C] -> float32 (size[0], size[1], C), every channel resized bilinearly."""
    height, width = size
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(maps[..., c], dtype=np.float32))
                           .resize((width, height), Image.BILINEAR))
                for c in range(maps.shape[-1])]
    return np.stack(channels, axis=-1)
