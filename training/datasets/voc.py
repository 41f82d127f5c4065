"""Pascal VOC 2012 segmentation: palette PNGs whose indices are class ids, 255 = ignore border.

Layout (root = VOCdevkit/VOC2012): JPEGImages/<id>.jpg, SegmentationClass/<id>.png,
ImageSets/Segmentation/<split>.txt (train, val, trainval).
"""

from pathlib import Path

from .base import (
    IGNORE_INDEX,
    Sample,
    SegmentationDataset,
    class_id_lut,
    pascal_colormap,
    read_id_list,
)

FOLDER = "VOCdevkit/VOC2012"
CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
]  # fmt: skip
PALETTE = pascal_colormap(len(CLASSES))


def load(root: Path, split: str) -> SegmentationDataset:
    ids = read_id_list(root / "ImageSets" / "Segmentation" / f"{split}.txt")
    samples = [
        Sample(root / "JPEGImages" / f"{i}.jpg", root / "SegmentationClass" / f"{i}.png")
        for i in ids
    ]
    return SegmentationDataset(
        name="voc",
        root=root,
        split=split,
        classes=CLASSES,
        palette=PALETTE,
        ignore_index=IGNORE_INDEX,
        samples=samples,
        mask_lut=class_id_lut(len(CLASSES)),
    )
