"""Augmentation that always moves an image and its mask together, in NumPy and Pillow.

Random scale, rotation about the centre, horizontal (and optionally vertical) flip and crop are
folded into ONE affine map per sample, applied by one Pillow warp per channel: bilinear for the
image, nearest for the mask (class ids are never blended). Only the crop's pixels are computed, so
the cost does not grow with the random scale. Pixels with no source (padding, rotated-in corners)
get mid-grey (127.5, i.e. 0 after normalisation) in the image and the ignore label 255 in the mask.
Optional colour jitter (brightness, contrast, saturation) changes the image alone, before the warp,
so the padding stays mid-grey.

No TensorFlow: the tf.data pipeline calls these functions, and so does the Keras `PyDataset` that
feeds training on the JAX backend (GPU machines without TensorFlow). Pillow releases the GIL while
it warps, so parallel loaders use several cores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from modelcard.exposure import normalise_exposure
from modelcard.geometry import letterbox

from .base import IGNORE_INDEX
from .photometric import AppearanceConfig, random_colour, random_degradation

IMAGE_FILL = 127.5


@dataclass(frozen=True)
class AugmentConfig:
    scale_range: tuple[float, float] = (0.5, 2.0)
    max_rotation_degrees: float = 15.0
    horizontal_flip: bool = True
    # Off by default: street scenes have an up; endoscopy frames (Kvasir) do not.
    vertical_flip: bool = False
    # Strength s of brightness, contrast and saturation factors drawn from [1 - s, 1 + s].
    color_jitter: float = 0.0
    # Exposure, white balance, blur, noise, JPEG, highlights (training.datasets.photometric).
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    # The training images' mean brightness when the run normalises exposure (modelcard.exposure):
    # every image is brought to it after the colour shifts, as the service does to what it is sent.
    exposure_target_mean: float | None = None

    def __post_init__(self) -> None:
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        if not 0 <= self.max_rotation_degrees < 90:
            raise ValueError(
                f"max_rotation_degrees must be in [0, 90), got {self.max_rotation_degrees}"
            )
        if not 0 <= self.color_jitter < 1:
            raise ValueError(f"color_jitter must be in [0, 1), got {self.color_jitter}")


@dataclass(frozen=True)
class Transform:
    """Scale, then rotate by `angle` radians about the centre, then flip (left-right and/or
    up-down), then crop at `offset`.

    `offset` (top, left) is the crop's corner in the scaled image; negative or past-the-end
    offsets pad.
    """

    scale: float = 1.0
    angle: float = 0.0
    flip: bool = False
    vertical_flip: bool = False
    offset: tuple[float, float] = (0.0, 0.0)


def crop_shape(crop_size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) from an int (square) or a pair."""
    if isinstance(crop_size, int):
        crop_size = (crop_size, crop_size)
    height, width = crop_size
    if height < 1 or width < 1:
        raise ValueError(f"crop_size must be positive, got {crop_size}")
    return int(height), int(width)


def output_to_input_matrix(input_hw: tuple[int, int], transform: Transform) -> np.ndarray:
    """The 6 affine coefficients (a, b, c, d, e, f) mapping an output (crop) pixel (x, y) to its
    source (a x + b y + c, d x + e y + f).

    Pixel centres sit at integer coordinates; scaling and rotation are about the image centre,
    so x_in - c_in = R(-angle) F (x_crop + offset - c_scaled) / scale, F = diag(+-1, +-1).
    """
    height, width = input_hw
    scale = transform.scale
    cos, sin = math.cos(transform.angle), math.sin(transform.angle)
    mirror_x = -1.0 if transform.flip else 1.0
    mirror_y = -1.0 if transform.vertical_flip else 1.0
    top, left = transform.offset
    dx = left - (width * scale - 1.0) / 2.0  # crop origin relative to the scaled image's centre
    dy = top - (height * scale - 1.0) / 2.0
    centre_x, centre_y = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    return np.array([
        cos * mirror_x / scale, sin * mirror_y / scale,
        centre_x + (cos * mirror_x * dx + sin * mirror_y * dy) / scale,
        -sin * mirror_x / scale, cos * mirror_y / scale,
        centre_y + (-sin * mirror_x * dx + cos * mirror_y * dy) / scale,
    ])  # fmt: skip


def _pillow_coefficients(matrix: np.ndarray) -> tuple[float, ...]:
    """Pillow puts pixel centres at +0.5 in both images: shift the map into its convention."""
    a, b, c, d, e, f = matrix
    return (a, b, c + 0.5 - 0.5 * (a + b), d, e, f + 0.5 - 0.5 * (d + e))


def _warp(channel: np.ndarray, coefficients, size_wh, fill: float, resample) -> np.ndarray:
    warped = Image.fromarray(channel).transform(
        size_wh, Image.Transform.AFFINE, coefficients, resample=resample, fillcolor=fill
    )
    return np.asarray(warped)


def apply_transform(
    image: np.ndarray, mask: np.ndarray, transform: Transform, crop_size: int | tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """image [H,W,3] (0..255) and mask [H,W] uint8 -> float32 image and uint8 mask at crop size."""
    crop_h, crop_w = crop_shape(crop_size)
    coefficients = _pillow_coefficients(output_to_input_matrix(mask.shape[:2], transform))
    image = np.asarray(image, np.float32)
    warped_image = np.stack(
        [
            _warp(np.ascontiguousarray(image[..., channel]), coefficients, (crop_w, crop_h),
                  IMAGE_FILL, Image.Resampling.BILINEAR)
            for channel in range(image.shape[-1])
        ],
        axis=-1,
    )  # fmt: skip
    warped_mask = _warp(
        np.asarray(mask, np.uint8), coefficients, (crop_w, crop_h), IGNORE_INDEX,
        Image.Resampling.NEAREST,
    )  # fmt: skip
    return warped_image, warped_mask


def random_transform(
    rng: np.random.Generator,
    input_hw: tuple[int, int],
    crop_size: int | tuple[int, int],
    config: AugmentConfig,
) -> Transform:
    """Draw a Transform: the same generator state gives the same transform."""
    low, high = config.scale_range
    scale = float(rng.uniform(low, high))
    max_angle = math.radians(config.max_rotation_degrees)
    angle = float(rng.uniform(-max_angle, max_angle))
    flip = bool(config.horizontal_flip and rng.random() < 0.5)
    # Crop anywhere inside the scaled image, or place the image anywhere inside a larger crop.
    slack = np.asarray(input_hw, np.float64) * scale - np.asarray(crop_shape(crop_size))
    offset = np.floor(np.minimum(slack, 0.0) + rng.random(2) * np.abs(slack))
    vertical_flip = bool(config.vertical_flip and rng.random() < 0.5)  # last: the rest stay put
    return Transform(
        scale=scale, angle=angle, flip=flip, vertical_flip=vertical_flip,
        offset=(float(offset[0]), float(offset[1])),
    )  # fmt: skip


def jitter_colours(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness, then contrast (about the image mean), then saturation (about each pixel's
    grey) of a 0..255 image, each factor drawn from [1 - strength, 1 + strength].

    Lighting and colour vary between endoscopes and cameras; the mask does not change with them.
    """
    brightness, contrast, saturation = rng.uniform(1.0 - strength, 1.0 + strength, 3)
    image = np.asarray(image, np.float32) * brightness
    mean = image.mean()
    image = (image - mean) * contrast + mean
    grey = image @ np.array([0.299, 0.587, 0.114], np.float32)
    image = grey[..., None] + (image - grey[..., None]) * saturation
    return np.clip(image, 0.0, 255.0)


def augment(
    image: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    crop_size: int | tuple[int, int],
    config: AugmentConfig = AugmentConfig(),
) -> tuple[np.ndarray, np.ndarray]:
    """One random scale/rotate/flip/crop (and colour jitter, appearance shift, exposure
    normalisation) of an (image, mask) pair. Without appearance shift the random draws are those
    of earlier versions."""
    transform = random_transform(rng, mask.shape[:2], crop_size, config)
    if config.color_jitter:
        image = jitter_colours(image, rng, config.color_jitter)
    if config.appearance.enabled:
        image = random_colour(image, rng, config.appearance)
    if config.exposure_target_mean is not None:
        image = normalise_exposure(np.asarray(image, np.float32), config.exposure_target_mean)
    image, mask = apply_transform(image, mask, transform, crop_size)
    if config.appearance.enabled:
        image = random_degradation(image, rng, config.appearance)
    return image, mask


def letterbox_pair(
    image: np.ndarray, mask: np.ndarray, crop_size: int | tuple[int, int],
    exposure_target_mean: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic eval view: the image letterboxed (and exposure-normalised when a target is
    given) exactly as evaluation and the service do it (`modelcard.geometry`), the mask resized
    (nearest) into the same place, padding ignored."""
    canvas, placement = letterbox(np.asarray(image, np.uint8), crop_shape(crop_size),
                                  exposure_target_mean=exposure_target_mean)
    resized_mask = Image.fromarray(np.asarray(mask, np.uint8)).resize(
        (placement.width, placement.height), Image.Resampling.NEAREST
    )
    padded_mask = np.full(canvas.shape[:2], IGNORE_INDEX, np.uint8)
    rows = slice(placement.top, placement.top + placement.height)
    padded_mask[rows, placement.left : placement.left + placement.width] = resized_mask
    return canvas.astype(np.float32), padded_mask


def normalise(image: np.ndarray) -> np.ndarray:
    """0..255 -> float32 [-1, 1], the model's input range."""
    return np.asarray(image, np.float32) / 127.5 - 1.0


def one_hot(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Class ids -> float32 one-hot; ignored (255) pixels get an all-zero row."""
    return (mask[..., None] == np.arange(num_classes, dtype=mask.dtype)).astype(np.float32)
