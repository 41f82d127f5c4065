"""Augmentation that always moves an image and its mask together.

Random scale, rotation about the centre, horizontal (and optionally vertical) flip and crop are
folded into ONE affine map
per sample, applied by one projective-transform op per tensor: bilinear for the image, nearest
for the mask (class ids are never blended). Only the crop's pixels are computed, so the cost does
not grow with the random scale. Pixels with no source (padding, rotated-in corners) get mid-grey
(127.5, i.e. 0 after normalisation) in the image and the ignore label 255 in the mask.
Optional colour jitter (brightness, contrast, saturation) changes the image alone, before the warp,
so the padding stays mid-grey.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf

from .base import IGNORE_INDEX

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
    offsets pad. Fields may be Python numbers or scalar tensors.
    """

    scale: float | tf.Tensor = 1.0
    angle: float | tf.Tensor = 0.0
    flip: bool | tf.Tensor = False
    vertical_flip: bool | tf.Tensor = False
    offset: tuple[float | tf.Tensor, float | tf.Tensor] = (0.0, 0.0)


def crop_shape(crop_size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) from an int (square) or a pair."""
    if isinstance(crop_size, int):
        crop_size = (crop_size, crop_size)
    height, width = crop_size
    if height < 1 or width < 1:
        raise ValueError(f"crop_size must be positive, got {crop_size}")
    return int(height), int(width)


def output_to_input_matrix(input_hw: tf.Tensor, transform: Transform) -> tf.Tensor:
    """The 8 projective coefficients mapping an output (crop) pixel to its source pixel.

    Pixel centres sit at integer coordinates; scaling and rotation are about the image centre,
    so x_in - c_in = R(-angle) F (x_crop + offset - c_scaled) / scale, F = diag(+-1, +-1).
    """
    height, width = tf.unstack(tf.cast(input_hw, tf.float32))
    scale = tf.cast(transform.scale, tf.float32)
    angle = tf.cast(transform.angle, tf.float32)
    cos, sin = tf.cos(angle), tf.sin(angle)
    mirror_x = tf.where(tf.cast(transform.flip, tf.bool), -1.0, 1.0)
    mirror_y = tf.where(tf.cast(transform.vertical_flip, tf.bool), -1.0, 1.0)
    top, left = (tf.cast(v, tf.float32) for v in transform.offset)
    dx = left - (width * scale - 1.0) / 2.0  # crop origin relative to the scaled image's centre
    dy = top - (height * scale - 1.0) / 2.0
    centre_x, centre_y = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    return tf.stack([
        cos * mirror_x / scale, sin * mirror_y / scale,
        centre_x + (cos * mirror_x * dx + sin * mirror_y * dy) / scale,
        -sin * mirror_x / scale, cos * mirror_y / scale,
        centre_y + (-sin * mirror_x * dx + cos * mirror_y * dy) / scale,
        0.0, 0.0,
    ])  # fmt: skip


def apply_transform(
    image: tf.Tensor, mask: tf.Tensor, transform: Transform, crop_size: int | tuple[int, int]
) -> tuple[tf.Tensor, tf.Tensor]:
    """image [H,W,3] float32 (0..255), mask [H,W] uint8 -> the same at crop size."""
    matrix = output_to_input_matrix(tf.shape(mask)[:2], transform)[None]
    output_shape = tf.constant(crop_shape(crop_size), tf.int32)

    def warp(tensor, fill, interpolation):
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=tensor[None], transforms=matrix, output_shape=output_shape,
            fill_value=fill, interpolation=interpolation, fill_mode="CONSTANT",
        )[0]  # fmt: skip

    warped_image = warp(tf.cast(image, tf.float32), IMAGE_FILL, "BILINEAR")
    warped_mask = warp(mask[..., None], float(IGNORE_INDEX), "NEAREST")[..., 0]
    return warped_image, warped_mask


def random_transform(
    seed: tf.Tensor, input_hw: tf.Tensor, crop_size: int | tuple[int, int], config: AugmentConfig
) -> Transform:
    """Draw a Transform from a stateless seed (shape [2]): same seed, same transform."""
    scale_seed, angle_seed, flip_seed, crop_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 4)
    )
    low, high = config.scale_range
    scale = tf.random.stateless_uniform([], scale_seed, low, high)
    max_angle = math.radians(config.max_rotation_degrees)
    angle = tf.random.stateless_uniform([], angle_seed, -max_angle, max_angle)
    flip = tf.logical_and(config.horizontal_flip, tf.random.stateless_uniform([], flip_seed) < 0.5)
    # Crop anywhere inside the scaled image, or place the image anywhere inside a larger crop.
    slack = tf.cast(input_hw, tf.float32) * scale - tf.constant(crop_shape(crop_size), tf.float32)
    fraction = tf.random.stateless_uniform([2], crop_seed)
    offset = tf.floor(tf.minimum(slack, 0.0) + fraction * tf.abs(slack))
    # Drawn from a folded seed, so runs without it keep the draws they always had.
    vertical_seed = tf.random.experimental.stateless_fold_in(seed, 1)
    vertical_flip = tf.logical_and(
        config.vertical_flip, tf.random.stateless_uniform([], vertical_seed) < 0.5
    )
    return Transform(
        scale=scale, angle=angle, flip=flip, vertical_flip=vertical_flip,
        offset=(offset[0], offset[1]),
    )  # fmt: skip


def jitter_colours(image: tf.Tensor, seed: tf.Tensor, strength: float) -> tf.Tensor:
    """Brightness, then contrast (about the image mean), then saturation (about each pixel's
    grey) of a 0..255 image, each factor drawn from [1 - strength, 1 + strength].

    Lighting and colour vary between endoscopes and cameras; the mask does not change with them.
    """
    brightness, contrast, saturation = tf.unstack(
        tf.random.stateless_uniform([3], seed, 1.0 - strength, 1.0 + strength)
    )
    image = tf.cast(image, tf.float32) * brightness
    image = (image - tf.reduce_mean(image)) * contrast + tf.reduce_mean(image)
    grey = tf.reduce_sum(image * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)
    image = grey + (image - grey) * saturation
    return tf.clip_by_value(image, 0.0, 255.0)


def augment(
    image: tf.Tensor,
    mask: tf.Tensor,
    seed: tf.Tensor,
    crop_size: int | tuple[int, int],
    config: AugmentConfig = AugmentConfig(),
) -> tuple[tf.Tensor, tf.Tensor]:
    """One random scale/rotate/flip/crop (and colour jitter) of an (image, mask) pair,
    reproducible from `seed`."""
    transform = random_transform(seed, tf.shape(mask)[:2], crop_size, config)
    if config.color_jitter:
        colour_seed = tf.random.experimental.stateless_fold_in(seed, 2)
        image = jitter_colours(image, colour_seed, config.color_jitter)
    return apply_transform(image, mask, transform, crop_size)


def letterbox(
    image: tf.Tensor, mask: tf.Tensor, crop_size: int | tuple[int, int]
) -> tuple[tf.Tensor, tf.Tensor]:
    """Deterministic eval view: fit inside the crop keeping aspect ratio, pad centred.

    Uses an antialiased resize, so large images are not aliased when shrunk.
    """
    crop_h, crop_w = crop_shape(crop_size)
    hw = tf.cast(tf.shape(mask)[:2], tf.float32)
    scale = tf.minimum(crop_h / hw[0], crop_w / hw[1])
    new_hw = tf.clip_by_value(
        tf.cast(tf.round(hw * scale), tf.int32), 1, tf.constant([crop_h, crop_w])
    )
    resized_image = tf.image.resize(tf.cast(image, tf.float32), new_hw, antialias=True)
    resized_mask = tf.image.resize(mask[..., None], new_hw, method="nearest")[..., 0]
    pad_before = (tf.constant([crop_h, crop_w]) - new_hw) // 2
    pad_after = tf.constant([crop_h, crop_w]) - new_hw - pad_before
    padding = tf.stack([pad_before, pad_after], axis=1)
    image_padding = tf.concat([padding, [[0, 0]]], 0)
    padded_image = tf.pad(resized_image, image_padding, constant_values=IMAGE_FILL)
    padded_mask = tf.pad(resized_mask, padding, constant_values=IGNORE_INDEX)
    return padded_image, padded_mask


def normalise(image: tf.Tensor) -> tf.Tensor:
    """0..255 -> [-1, 1], the model's input range."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def one_hot(mask: tf.Tensor, num_classes: int) -> tf.Tensor:
    """Class ids -> float32 one-hot; ignored (255) pixels get an all-zero row."""
    return tf.one_hot(tf.cast(mask, tf.int32), num_classes, dtype=tf.float32)
