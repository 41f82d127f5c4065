"""CamVid in the SegNet 11-class 480x360 version (Brostow et al., PRL 2009).

Layout: <split>/<name>.png images and <split>annot/<name>.png masks of class ids 0..10;
11 = unlabelled (void) becomes the ignore label.
"""

from pathlib import Path

from .base import (
    IGNORE_INDEX,
    Sample,
    SegmentationDataset,
    class_id_lut,
    require_path,
)

FOLDER = "camvid"
CLASSES = [
    "sky", "building", "pole", "road", "pavement", "tree",
    "sign_symbol", "fence", "car", "pedestrian", "bicyclist",
]  # fmt: skip
PALETTE = [
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
]  # fmt: skip
VOID = 11


def load(root: Path, split: str) -> SegmentationDataset:
    image_dir = require_path(root / split, f"camvid {split!r} image folder")
    mask_dir = require_path(root / f"{split}annot", f"camvid {split!r} annotation folder")
    samples = [Sample(path, mask_dir / path.name) for path in sorted(image_dir.glob("*.png"))]
    return SegmentationDataset(
        name="camvid",
        root=root,
        split=split,
        classes=CLASSES,
        palette=PALETTE,
        ignore_index=IGNORE_INDEX,
        samples=samples,
        mask_lut=class_id_lut(len(CLASSES), ignored=(VOID,)),
    )
