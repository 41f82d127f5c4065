"""Input pipelines: load -> (cache) -> shuffle -> augment or letterbox -> normalise, one-hot -> batch.

Two drivers share one per-sample function (`prepare_pair`, NumPy + Pillow):
- `make_pipeline`: a `tf.data` pipeline for the TensorFlow backend, which `tf.distribute`
  (mirrored, multi-worker) shards and prefetches;
- `SegmentationBatches`: a Keras `PyDataset` for the other backends (JAX on a GPU machine
  without TensorFlow), which loads batches in worker threads.

Decoding goes through `SegmentationDataset.load_sample` (Pillow, which releases the GIL while
decoding), so every format's mask mapping and checks apply unchanged. JPEGs larger than
`max_side` are decoded at reduced scale, which makes large Kvasir frames cheap; with `cache=True`
the decoded, downscaled pairs stay in memory after the first epoch.
"""

from __future__ import annotations

import math
import os

import keras
import numpy as np

from .augment import AugmentConfig, augment, crop_shape, letterbox_pair, normalise, one_hot
from .base import SegmentationDataset


def prepare_pair(
    image: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator | None,
    crop_size: int | tuple[int, int],
    augment_config: AugmentConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """One pair -> (float32 [h,w,3] in [-1,1], uint8 class ids [h,w]): a random augmentation
    drawn from `rng`, or the deterministic letterbox when `rng` is None."""
    if rng is None:
        image, mask = letterbox_pair(image, mask, crop_size, augment_config.exposure_target_mean)
    else:
        image, mask = augment(image, mask, rng, crop_size, augment_config)
    return normalise(image), mask


def prepare_example(
    image: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator | None,
    crop_size: int | tuple[int, int],
    num_classes: int,
    augment_config: AugmentConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """`prepare_pair` with float32 one-hot labels [h,w,C], as the tf.data pipeline feeds them."""
    image, mask = prepare_pair(image, mask, rng, crop_size, augment_config)
    return image, one_hot(mask, num_classes)


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
):
    """A tf.data.Dataset of (images float32 [B,h,w,3] in [-1,1], labels float32 one-hot [B,h,w,C]).

    augment: random scale/rotation/flip/crop (training); otherwise a deterministic letterbox to
      `crop_size` (validation during training; full-resolution evaluation reads `load_sample`).
    shuffle, drop_remainder: default to `augment`. seed: makes order and augmentation reproducible.
    max_side: downscale each pair on load so its longer side is at most this many pixels.
    cache: keep decoded pairs in memory (Kvasir train at max_side 512 is ~0.5 GB).
    """
    import tensorflow as tf

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

    def prepare(image, mask, sample_seed):
        rng = np.random.default_rng(int(sample_seed)) if augment else None
        return prepare_example(image, mask, rng, crop_hw, dataset.num_classes, augment_config)

    def prepare_tf(pair, sample_seed):
        image, labels = tf.numpy_function(
            prepare, [*pair, sample_seed], (tf.float32, tf.float32), stateful=False
        )
        image.set_shape([*crop_hw, 3])
        labels.set_shape([*crop_hw, dataset.num_classes])
        return image, labels

    seeds = tf.data.Dataset.random(seed=seed)  # one per example: reproducible, any parallelism
    pairs = tf.data.Dataset.zip((pairs, seeds)).map(prepare_tf, num_parallel_calls=autotune)
    return pairs.batch(batch_size, drop_remainder=drop_remainder).prefetch(autotune)


class SegmentationBatches(keras.utils.PyDataset):
    """The same batches as `make_pipeline`, without TensorFlow.

    Training (`augment=True`) is an endless stream: batch `i` is position `i % batches_per_pass`
    of pass `i // batches_per_pass` over the shuffled samples (the last partial batch is dropped),
    with each pass's order and each example's augmentation drawn from `seed`, so a run is
    reproducible whatever the thread count. `first_batch` continues a resumed run's stream instead of
    repeating its start.
    `workers` threads (or, with `processes`, forked processes: augmentation mostly holds the
    GIL) load batches ahead (an example costs ~20 ms at 512 px on one core). What they pass
    on is small: images as float16 (exact for 8-bit pixels mapped to [-1, 1] to within 1/2000;
    the model casts its input to float32) and labels as uint8 class ids, which the losses and
    metrics expand to one-hot on the device: 1/8 of the float32 one-hot batch.
    Validation (`augment=False`) is one finite, ordered, letterboxed pass.
    """

    def __init__(
        self,
        dataset: SegmentationDataset,
        crop_size: int | tuple[int, int],
        batch_size: int,
        augment: bool,
        seed: int = 0,
        max_side: int | None = None,
        cache: bool = False,
        augment_config: AugmentConfig = AugmentConfig(),
        first_batch: int = 0,
        workers: int = 0,
        processes: bool = False,
    ):
        workers = workers or min(8, os.cpu_count() or 1)
        super().__init__(workers=workers, use_multiprocessing=processes, max_queue_size=max(10, 2 * workers))
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.dataset, self.crop_hw, self.batch_size = dataset, crop_shape(crop_size), batch_size
        self.augment, self.seed, self.max_side = augment, seed, max_side
        self.augment_config, self.first_batch = augment_config, first_batch
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None
        count = len(dataset.samples)
        if processes and cache:  # decode once here: every forked loader starts with the cache
            for index in range(count):
                self._load(index)
        self.batches_per_pass = count // batch_size if augment else math.ceil(count / batch_size)
        if self.batches_per_pass < 1:
            raise ValueError(f"{count} samples cannot fill one batch of {batch_size}")

    @property
    def num_batches(self) -> int | None:
        return None if self.augment else self.batches_per_pass

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        pair = self.dataset.load_sample(self.dataset.samples[index], max_side=self.max_side)
        if self._cache is not None:
            self._cache[index] = pair
        return pair

    def __getitem__(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        count = len(self.dataset.samples)
        if not self.augment:
            indices = range(batch * self.batch_size, min(count, (batch + 1) * self.batch_size))
            examples = [self._example(index, None) for index in indices]
        else:
            batch += self.first_batch
            epoch, position = divmod(batch, self.batches_per_pass)
            order = np.random.default_rng([self.seed, epoch]).permutation(count)
            indices = order[position * self.batch_size : (position + 1) * self.batch_size]
            examples = [
                self._example(int(index), np.random.default_rng([self.seed, epoch, int(index)]))
                for index in indices
            ]
        images, labels = zip(*examples)
        return np.stack(images).astype(np.float16), np.stack(labels)

    def _example(self, index: int, rng: np.random.Generator | None):
        image, mask = self._load(index)
        return prepare_pair(image, mask, rng, self.crop_hw, self.augment_config)
