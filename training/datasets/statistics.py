"""Per-class pixel counts over a split's masks, for class-weighted cross-entropy."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .base import SegmentationDataset


def class_pixel_counts(dataset: SegmentationDataset, workers: int = 2) -> np.ndarray:
    """int64 [num_classes]: labelled pixels of each class at full resolution; ignore not counted."""

    def count(sample):
        return np.bincount(dataset.load_mask(sample.mask_path).ravel(), minlength=256)

    with ThreadPoolExecutor(workers) as pool:  # Pillow decodes without the GIL
        totals = sum(pool.map(count, dataset.samples))
    return totals[: dataset.num_classes].astype(np.int64)
