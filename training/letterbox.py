"""Fit an image into the model's fixed input and map the prediction back to the original pixels.

Letterbox, not a plain resize: the image is scaled by one factor (aspect ratio kept, as in the
random-scale-and-crop training pipeline, and as the service does), centred and padded with
mid-grey: the value the training pipeline pads with (0 after normalisation). Black padding
shifts the ASPP image-pooling branch's global average and cost CamVid ~0.1 mIoU. Plain NumPy + Pillow, no TensorFlow, so evaluating an
ONNX file needs only ONNX Runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


PAD_VALUE = 128  # uint8 mid-grey; training pads with 127.5 before normalising, i.e. 0 in [-1, 1]


@dataclass(frozen=True)
class Placement:
    """Where the scaled image sits inside the model input: rows top:top+height, cols left:left+width."""

    top: int
    left: int
    height: int
    width: int


def letterbox(image: np.ndarray | Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, Placement]:
    """uint8 HxWx3 (or an RGB PIL image) -> uint8 ``size``x3 (bilinear scale, mid-grey padding) and where
    the image went."""
    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    target_height, target_width = size
    width, height = picture.size
    scale = min(target_height / height, target_width / width)
    scaled_height = max(1, min(target_height, round(height * scale)))
    scaled_width = max(1, min(target_width, round(width * scale)))
    scaled = np.asarray(picture.resize((scaled_width, scaled_height), Image.BILINEAR))
    top, left = (target_height - scaled_height) // 2, (target_width - scaled_width) // 2
    canvas = np.full((target_height, target_width, 3), PAD_VALUE, dtype=np.uint8)
    canvas[top:top + scaled_height, left:left + scaled_width] = scaled
    return canvas, Placement(top, left, scaled_height, scaled_width)


def restore_probabilities(probabilities: np.ndarray, placement: Placement,
                          original_size: tuple[int, int]) -> np.ndarray:
    """float HxWxC model output -> float32 (original height, original width, C): crop away the
    padding, then bilinearly resize every class channel (the argmax is taken afterwards, at the
    original resolution, so class borders are not blocky)."""
    crop = probabilities[placement.top:placement.top + placement.height,
                         placement.left:placement.left + placement.width]
    return resize_channels(crop, original_size)


def resize_channels(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float [h, w, C] -> float32 (size[0], size[1], C), every channel resized bilinearly."""
    height, width = size
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(maps[..., c], dtype=np.float32))
                           .resize((width, height), Image.BILINEAR))
                for c in range(maps.shape[-1])]
    return np.stack(channels, axis=-1)
