"""Appearance-shift validation: a split's images under fixed, seeded, strong photometric shifts.

    python -m training.evaluate --onnx engines/polyp.onnx --split val@mixed

A split named ``<split>@<shift>`` (any dataset, any split) is ``<split>`` with every image changed
by the shift ``<shift>``; masks are unchanged. The parameters of each image's shift are drawn from
a generator seeded by the shift's name and the image's file name, so an image always gets the
same shift whatever the order, ``--limit`` or machine: the set is fixed, like a split on disk.

Why (issue 13): the polyp model scores Dice 0.85-0.88 on Kvasir-SEG frames and 0.746 on another
hospital's, whose frames are smaller, from a different endoscope (colour, tone, sharpness) and
show more specular highlights. No such frames are in this repository, and the unseen sets stay
unseen, so the shift val simulates what changes between scopes, each shift stronger than the
training augmentation draws:

- ``dark`` / ``bright``: gamma 1.5-2.0 / 0.45-0.65 (exposure, the light source's power);
- ``cast``: per-channel gains 0.75-1.25 (white balance, the sensor's colour response);
- ``blur``: Gaussian sigma 1.5-3 px (defocus, motion);
- ``noise``: Gaussian std 6-12 grey levels (a smaller, noisier sensor);
- ``jpeg``: quality 10-25 (a video grabber's compression);
- ``specular``: 4-10 saturated highlights of up to 6 % of the shorter side (wet mucosa);
- ``lowres``: shrink to a longer side of 160-256 px and back (a lower-resolution scope);
- ``mixed``: 3 of the above per image (at most one of dark/bright), in a fixed order. The
  headline number: a new scope changes several of these at once.

Resolution-dependent shifts (blur, noise, JPEG, highlight size) act at the model's input
resolution (longer side 512, what the letterbox feeds the network) and the result is resized back
to the original size, so "sigma 2 px" means the same to the network for a 1920 px and a 487 px frame.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from . import photometric as ph
from .base import Sample, SegmentationDataset

WORKING_SIDE = 512  # the served models' input side


def _uniform(rng, low, high):
    return float(rng.uniform(low, high))


SHIFTS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "dark": lambda image, rng: ph.adjust_gamma(image, _uniform(rng, 1.5, 2.0)),
    "bright": lambda image, rng: ph.adjust_gamma(image, _uniform(rng, 0.45, 0.65)),
    "cast": lambda image, rng: ph.white_balance(image, tuple(rng.uniform(0.75, 1.25, 3))),
    "specular": lambda image, rng: ph.specular_highlights(image, rng, int(rng.integers(4, 11)), 0.06),
    "lowres": lambda image, rng: ph.downscale_upscale(image, max(1.0, max(image.shape[:2]) / _uniform(rng, 160, 256))),
    "blur": lambda image, rng: ph.gaussian_blur(image, _uniform(rng, 1.5, 3.0)),
    "noise": lambda image, rng: ph.add_noise(image, _uniform(rng, 6.0, 12.0), rng),
    "jpeg": lambda image, rng: ph.jpeg(image, int(rng.integers(10, 26))),
}  # fmt: skip
ORDER = tuple(SHIFTS)  # the order in which "mixed" applies its picks: colour, then the camera
EXPOSURE = ("dark", "bright")
MIXED = "mixed"
MIXED_COUNT = 3
NAMES = (*SHIFTS, MIXED)


def seed_for(shift: str, sample: Sample) -> int:
    """A stable seed from the shift and the image's file name (not its position in the split)."""
    return zlib.crc32(f"{shift}/{sample.image_path.name}".encode())


def picks(shift: str, rng: np.random.Generator) -> list[str]:
    """The single shifts that ``shift`` applies, in application order."""
    if shift != MIXED:
        return [shift]
    exposure = [str(rng.choice(EXPOSURE))]
    others = [name for name in ORDER if name not in EXPOSURE]
    chosen = set(rng.choice(others + exposure, size=MIXED_COUNT, replace=False).tolist())
    return [name for name in ORDER if name in chosen]


def apply_shift(image: np.ndarray, shift: str, rng: np.random.Generator) -> np.ndarray:
    """uint8 HxWx3 -> uint8 HxWx3 of the same size, shifted (at the working resolution)."""
    if shift not in NAMES:
        raise ValueError(f"unknown appearance shift {shift!r}; choose one of {list(NAMES)}")
    height, width = image.shape[:2]
    scale = min(1.0, WORKING_SIDE / max(height, width))
    working = image
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        working = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
    out = np.asarray(working, np.float32)
    for name in picks(shift, rng):
        out = SHIFTS[name](out, rng)
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if out.shape[:2] != (height, width):
        out = np.asarray(Image.fromarray(out).resize((width, height), Image.Resampling.BILINEAR))
    return out


@dataclass(eq=False)
class ShiftedDataset(SegmentationDataset):
    """A split whose images are shifted on load (``load_sample``); masks and samples unchanged."""

    shift: str = MIXED
    base_split: str = field(default="")

    def load_sample(self, sample: Sample, max_side: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        image, mask = super().load_sample(sample, max_side=max_side)
        rng = np.random.default_rng(seed_for(self.shift, sample))
        return apply_shift(image, self.shift, rng), mask


def shifted(dataset: SegmentationDataset, shift: str) -> ShiftedDataset:
    """``dataset`` under ``shift``; its split is named ``<split>@<shift>``."""
    if shift not in NAMES:
        raise ValueError(f"unknown appearance shift {shift!r}; choose one of {list(NAMES)}")
    return ShiftedDataset(
        name=dataset.name, root=dataset.root, split=f"{dataset.split}@{shift}", classes=dataset.classes,
        palette=dataset.palette, ignore_index=dataset.ignore_index, samples=dataset.samples,
        mask_lut=dataset.mask_lut, shift=shift, base_split=dataset.split,
    )  # fmt: skip


def split_and_shift(split: str) -> tuple[str, str | None]:
    """``"val@mixed"`` -> ``("val", "mixed")``; a plain split -> ``(split, None)``."""
    if "@" not in split:
        return split, None
    base, shift = split.split("@", 1)
    if not base or not shift:
        raise ValueError(f"split {split!r}: expected <split>@<shift>, shifts: {list(NAMES)}")
    return base, shift


