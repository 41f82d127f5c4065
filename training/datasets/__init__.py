"""Segmentation datasets (folder, Kvasir-SEG, CamVid, Pascal VOC, Cityscapes) and their input
pipeline.

Readers (`get_dataset`, `SegmentationDataset`) and augmentation need only NumPy and Pillow; the
input pipelines (`make_pipeline` for tf.data, `SegmentationBatches` for other Keras backends)
import Keras/TensorFlow, so they are imported on first use.
"""

from .base import IGNORE_INDEX, Sample, SegmentationDataset, data_root
from .registry import READERS, get_dataset
from .statistics import class_pixel_counts, split_mean_brightness

__all__ = [
    "IGNORE_INDEX",
    "READERS",
    "Sample",
    "SegmentationBatches",
    "SegmentationDataset",
    "class_pixel_counts",
    "data_root",
    "get_dataset",
    "make_pipeline",
    "split_mean_brightness",
]


def __getattr__(name):
    if name in ("make_pipeline", "SegmentationBatches"):  # keep Keras out of reader-only imports
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
