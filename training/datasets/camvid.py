"""CamVid in the SegNet 11-class 480x360 version (Brostow et al., PRL 2009).

Layout: <split>/<name>.png images and <split>annot/<name>.png masks of class ids 0..10;
11 = unlabelled (void) becomes the ignore label.

Besides the folder splits (``train``, ``val``) there are splits by drive (file names start with
the sequence, ``0016E5_07959.png``; see ``training.datasets.sequences``): ``val`` is all of
sequence 0016E5, which ``train`` also holds, so ``heldout-0001TP`` (62 frames of a drive that
``train-no-0001TP`` never shows) is the honest validation of generalisation to a new drive.
"""

from pathlib import Path

from .base import (
    IGNORE_INDEX,
    Sample,
    SegmentationDataset,
    class_id_lut,
    require_path,
)
from .sequences import select_frames

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
FOLDER_SPLITS = ("train", "val")


def _folder_frames(root: Path, split: str) -> list[Path]:
    image_dir = require_path(root / split, f"camvid {split!r} image folder")
    require_path(root / f"{split}annot", f"camvid {split!r} annotation folder")
    return sorted(image_dir.glob("*.png"))


def load(root: Path, split: str) -> SegmentationDataset:
    if split in FOLDER_SPLITS:
        frames = _folder_frames(root, split)
    else:
        frames = select_frames(split, FOLDER_SPLITS, lambda base: _folder_frames(root, base))
    samples = [Sample(path, path.parent.parent / f"{path.parent.name}annot" / path.name)
               for path in frames]
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
