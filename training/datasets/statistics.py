"""Statistics of a training split: per-class pixel counts (for class-weighted cross-entropy) and
the mean brightness its images are normalised to (``modelcard.exposure``)."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from modelcard.exposure import mean_brightness

from .base import SegmentationDataset


def class_pixel_counts(dataset: SegmentationDataset, workers: int = 2) -> np.ndarray:
    """int64 [num_classes]: labelled pixels of each class at full resolution; ignore not counted."""

    def count(sample):
        return np.bincount(dataset.load_mask(sample.mask_path).ravel(), minlength=256)

    with ThreadPoolExecutor(workers) as pool:  # Pillow decodes without the GIL
        totals = sum(pool.map(count, dataset.samples))
    return totals[: dataset.num_classes].astype(np.int64)


def split_mean_brightness(dataset: SegmentationDataset, workers: int = 2) -> float:
    """Mean over the split's images of each image's mean brightness (``modelcard.exposure``), at
    full resolution: the target every image is brought to when a run normalises exposure."""
    with ThreadPoolExecutor(workers) as pool:
        means = list(pool.map(lambda sample: mean_brightness(dataset.load_image(sample.image_path)),
                              dataset.samples))
    return float(np.mean(means))
