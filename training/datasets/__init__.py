"""Segmentation datasets (folder, Kvasir-SEG, CamVid, Pascal VOC, Cityscapes) and their input
pipeline.

Readers (`get_dataset`, `SegmentationDataset`) need only numpy and Pillow; `make_pipeline` and
the augmentation functions need TensorFlow and are imported on first use.
"""

from .base import IGNORE_INDEX, Sample, SegmentationDataset, data_root
from .registry import READERS, get_dataset
from .statistics import class_pixel_counts

__all__ = [
    "IGNORE_INDEX",
    "READERS",
    "Sample",
    "SegmentationDataset",
    "class_pixel_counts",
    "data_root",
    "get_dataset",
    "make_pipeline",
]


def __getattr__(name):
    if name == "make_pipeline":  # keep TensorFlow out of reader-only imports
        from .pipeline import make_pipeline

        return make_pipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
