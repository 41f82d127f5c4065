"""What every dataset reader produces: a list of image/mask pairs plus class metadata.

Readers only know their on-disk layout; decoding, the raw-mask -> class-id mapping, the checks
(missing files, image/mask size mismatch, unexpected mask values) and the early downscale live
here once. This module needs only numpy and Pillow, so evaluation and export code (and a JAX-only
machine) can read samples without TensorFlow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

IGNORE_INDEX = 255
"""Class id of ignored pixels in every loaded mask, whatever the on-disk format uses."""

DATA_ROOT_ENV = "DEEPLAB_DATA_ROOT"
PROJECT_ROOT = Path(__file__).resolve().parents[2]

INVALID = -1
"""Marks raw mask values a format never uses: loading such a mask is an error, not silent ignore."""


def data_root() -> Path:
    """The folder that holds all datasets: `$DEEPLAB_DATA_ROOT`, else `<project>/../shared/data`."""
    configured = os.environ.get(DATA_ROOT_ENV)
    return Path(configured) if configured else PROJECT_ROOT.parent / "shared" / "data"


def require_path(path: Path, what: str) -> Path:
    """Return `path`, or raise FileNotFoundError saying what was expected where."""
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def read_id_list(path: Path) -> list[str]:
    """Sample ids from a split file: one per line, blank lines skipped."""
    require_path(path, "split file")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def class_id_lut(num_classes: int, ignored: tuple[int, ...] = (IGNORE_INDEX,)) -> np.ndarray:
    """Raw value -> class id for masks that already store class ids; `ignored` values -> 255."""
    lut = np.full(256, INVALID, dtype=np.int16)
    lut[:num_classes] = np.arange(num_classes)
    lut[list(ignored)] = IGNORE_INDEX
    return lut


def pascal_colormap(num_classes: int) -> list[tuple[int, int, int]]:
    """The PASCAL VOC colour map (bit-interleaved class id), usable for any class count."""
    palette = []
    for class_id in range(num_classes):
        red = green = blue = 0
        value = class_id
        for shift in range(7, -1, -1):
            red |= ((value >> 0) & 1) << shift
            green |= ((value >> 1) & 1) << shift
            blue |= ((value >> 2) & 1) << shift
            value >>= 3
        palette.append((red, green, blue))
    return palette


@dataclass(frozen=True)
class Sample:
    image_path: Path
    mask_path: Path


def fit_within(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled down (never up) so that the longer side is at most `max_side`."""
    width, height = size
    if max_side is None or max(width, height) <= max_side:
        return size
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(eq=False)
class SegmentationDataset:
    """One split of one dataset.

    `mask_lut` maps every raw 8-bit mask value to a class id, to IGNORE_INDEX, or to INVALID
    (a value that format never contains, reported as an error naming the file).
    """

    name: str
    root: Path
    split: str
    classes: list[str]
    palette: list[tuple[int, int, int]]
    ignore_index: int | None
    samples: list[Sample]
    mask_lut: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.palette) != len(self.classes):
            raise ValueError(
                f"{self.name}: {len(self.classes)} classes but {len(self.palette)} palette colours"
            )
        if not 1 <= len(self.classes) < IGNORE_INDEX:
            raise ValueError(f"{self.name}: class count must be 1..254, got {len(self.classes)}")
        if not self.samples:
            raise ValueError(f"{self.name}: split {self.split!r} under {self.root} has no samples")
        for sample in self.samples:  # fail at construction, not mid-epoch
            require_path(sample.image_path, "image")
            require_path(sample.mask_path, "mask")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def load_image(self, path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 HxWx3 RGB; `size` (width, height) downsizes with an antialiasing filter."""
        with Image.open(path) as image:
            return _decode_rgb(image, size)

    def load_mask(self, path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 HxW class ids, 255 = ignore; `size` (width, height) resizes with nearest."""
        with Image.open(path) as mask:
            return self._decode_mask(mask, path, size)

    def load_sample(
        self, sample: Sample, max_side: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The aligned (image, mask) pair, downscaled so the longer side is at most `max_side`.

        Sizes are compared from the file headers before decoding, so a mismatch costs nothing.
        """
        with Image.open(sample.image_path) as image, Image.open(sample.mask_path) as mask:
            if image.size != mask.size:
                raise ValueError(
                    f"image/mask size mismatch: image {sample.image_path} is "
                    f"{image.size[0]}x{image.size[1]} but mask {sample.mask_path} is "
                    f"{mask.size[0]}x{mask.size[1]}"
                )
            size = fit_within(image.size, max_side)
            return _decode_rgb(image, size), self._decode_mask(mask, sample.mask_path, size)

    def _decode_mask(
        self, mask: Image.Image, path: Path, size: tuple[int, int] | None
    ) -> np.ndarray:
        if mask.mode not in ("L", "P"):
            raise ValueError(
                f"mask {path} has mode {mask.mode}; expected a single-channel 8-bit PNG "
                "(mode L or P) of class ids"
            )
        if size is not None and size != mask.size:
            mask = mask.resize(size, Image.Resampling.NEAREST)
        class_ids = self.mask_lut[np.asarray(mask)]
        if (class_ids == INVALID).any():
            bad = np.unique(np.asarray(mask)[class_ids == INVALID]).tolist()
            raise ValueError(f"mask {path} has values {bad} that are not {self.name} labels")
        return class_ids.astype(np.uint8)


def _decode_rgb(image: Image.Image, size: tuple[int, int] | None) -> np.ndarray:
    if size is not None and size != image.size:
        image.draft("RGB", size)  # JPEG: decode at a reduced scale first, much faster
        image = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image.convert("RGB"))
