"""Cityscapes fine annotations: the 34 labelIds are mapped to the 19 evaluation trainIds.

Layout: leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png and
gtFine/<split>/<city>/<stem>_gtFine_labelIds.png. LabelIds without a trainId become ignore.
"""

from pathlib import Path

import numpy as np

from .base import (
    IGNORE_INDEX,
    INVALID,
    Sample,
    SegmentationDataset,
    require_path,
)

FOLDER = "cityscapes"
# (labelId, name, colour) of the 19 training classes in trainId order (cityscapesScripts labels).
TRAIN_LABELS = [
    (7, "road", (128, 64, 128)),
    (8, "sidewalk", (244, 35, 232)),
    (11, "building", (70, 70, 70)),
    (12, "wall", (102, 102, 156)),
    (13, "fence", (190, 153, 153)),
    (17, "pole", (153, 153, 153)),
    (19, "traffic light", (250, 170, 30)),
    (20, "traffic sign", (220, 220, 0)),
    (21, "vegetation", (107, 142, 35)),
    (22, "terrain", (152, 251, 152)),
    (23, "sky", (70, 130, 180)),
    (24, "person", (220, 20, 60)),
    (25, "rider", (255, 0, 0)),
    (26, "car", (0, 0, 142)),
    (27, "truck", (0, 0, 70)),
    (28, "bus", (0, 60, 100)),
    (31, "train", (0, 80, 100)),
    (32, "motorcycle", (0, 0, 230)),
    (33, "bicycle", (119, 11, 32)),
]
CLASSES = [name for _, name, _ in TRAIN_LABELS]
PALETTE = [colour for _, _, colour in TRAIN_LABELS]
NUM_LABEL_IDS = 34
IMAGE_SUFFIX = "_leftImg8bit.png"
MASK_SUFFIX = "_gtFine_labelIds.png"


def label_id_to_train_id() -> np.ndarray:
    """LabelIds 0..33 -> trainId or 255; any other raw value is invalid."""
    lut = np.full(256, INVALID, dtype=np.int16)
    lut[:NUM_LABEL_IDS] = IGNORE_INDEX
    for train_id, (label_id, _, _) in enumerate(TRAIN_LABELS):
        lut[label_id] = train_id
    return lut


def load(root: Path, split: str) -> SegmentationDataset:
    image_dir = require_path(root / "leftImg8bit" / split, f"cityscapes {split!r} image folder")
    mask_dir = require_path(root / "gtFine" / split, f"cityscapes {split!r} gtFine folder")
    samples = [
        Sample(path, mask_dir / path.parent.name / path.name.replace(IMAGE_SUFFIX, MASK_SUFFIX))
        for path in sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
    ]
    return SegmentationDataset(
        name="cityscapes",
        root=root,
        split=split,
        classes=CLASSES,
        palette=PALETTE,
        ignore_index=IGNORE_INDEX,
        samples=samples,
        mask_lut=label_id_to_train_id(),
    )
