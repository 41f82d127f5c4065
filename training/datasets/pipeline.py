"""The tf.data input pipeline: load -> (cache) -> shuffle -> augment or letterbox -> batch.

Decoding goes through `SegmentationDataset.load_sample` (Pillow, which releases the GIL while
decoding) inside a parallel map, so every format's mask mapping and checks apply unchanged. JPEGs
larger than `max_side` are decoded at reduced scale, which makes large Kvasir frames cheap; with
`cache=True` the decoded, downscaled pairs stay in memory after the first epoch.
"""

from __future__ import annotations

import tensorflow as tf

from .augment import AugmentConfig, crop_shape, letterbox, normalise, one_hot
from .augment import augment as augment_pair
from .base import SegmentationDataset


def make_pipeline(
    dataset: SegmentationDataset,
    crop_size: int | tuple[int, int],
    batch_size: int,
    augment: bool,
    shuffle: bool | None = None,
    repeat: bool = False,
    seed: int | None = None,
    max_side: int | None = None,
    cache: bool = False,
    augment_config: AugmentConfig = AugmentConfig(),
    drop_remainder: bool | None = None,
) -> tf.data.Dataset:
    """Batches of (images float32 [B,h,w,3] in [-1,1], labels float32 one-hot [B,h,w,C]).

    augment: random scale/rotation/flip/crop (training); otherwise a deterministic letterbox to
      `crop_size` (validation during training; full-resolution evaluation reads `load_sample`).
    shuffle, drop_remainder: default to `augment`. seed: makes order and augmentation reproducible.
    max_side: downscale each pair on load so its longer side is at most this many pixels.
    cache: keep decoded pairs in memory (Kvasir train at max_side 512 is ~0.5 GB).
    """
    crop_hw = crop_shape(crop_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    shuffle = augment if shuffle is None else shuffle
    drop_remainder = augment if drop_remainder is None else drop_remainder
    num_samples = len(dataset.samples)
    autotune = tf.data.AUTOTUNE

    def load(index):
        return dataset.load_sample(dataset.samples[int(index)], max_side=max_side)

    def load_tf(index):
        image, mask = tf.numpy_function(load, [index], (tf.uint8, tf.uint8), stateful=False)
        image.set_shape([None, None, 3])
        mask.set_shape([None, None])
        return image, mask

    pairs = tf.data.Dataset.range(num_samples)
    if shuffle and not cache:  # shuffling ids is free; shuffle decoded pairs only when cached
        pairs = pairs.shuffle(num_samples, seed=seed, reshuffle_each_iteration=True)
    pairs = pairs.map(load_tf, num_parallel_calls=autotune)
    if cache:
        pairs = pairs.cache()
        if shuffle:
            pairs = pairs.shuffle(num_samples, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        pairs = pairs.repeat()

    def to_model_inputs(image, mask):
        image.set_shape([*crop_hw, 3])
        mask.set_shape(crop_hw)
        return normalise(image), one_hot(mask, dataset.num_classes)

    if augment:
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        pairs = tf.data.Dataset.zip((pairs, seeds)).map(
            lambda pair, pair_seed: to_model_inputs(
                *augment_pair(*pair, pair_seed, crop_hw, augment_config)
            ),
            num_parallel_calls=autotune,
        )
    else:
        pairs = pairs.map(
            lambda image, mask: to_model_inputs(*letterbox(image, mask, crop_hw)),
            num_parallel_calls=autotune,
        )
    return pairs.batch(batch_size, drop_remainder=drop_remainder).prefetch(autotune)
