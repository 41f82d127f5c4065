"""Kvasir-SEG (Jha et al., MMM 2020): polyp masks stored as 0/255 PNGs -> classes 0/1.

Layout: images/<id>.jpg, masks/<id>.png, splits/<split>.txt (one id a line).
"""

from pathlib import Path

import numpy as np

from .base import Sample, SegmentationDataset, read_id_list

FOLDER = "kvasir-seg"
CLASSES = ["background", "polyp"]
PALETTE = [(0, 0, 0), (255, 255, 255)]


def _mask_lut() -> np.ndarray:
    """Threshold at >127, as the shipped masks were made from the official JPEG masks."""
    lut = np.zeros(256, dtype=np.int16)
    lut[128:] = 1
    return lut


def load(root: Path, split: str) -> SegmentationDataset:
    ids = read_id_list(root / "splits" / f"{split}.txt")
    samples = [Sample(root / "images" / f"{i}.jpg", root / "masks" / f"{i}.png") for i in ids]
    return SegmentationDataset(
        name="kvasir",
        root=root,
        split=split,
        classes=CLASSES,
        palette=PALETTE,
        ignore_index=None,
        samples=samples,
        mask_lut=_mask_lut(),
    )
