"""Masks out: an indexed PNG (pixel = class id), COCO compressed RLE per class, a grey PNG (the
uncertainty map) and probabilities as a `.npy` of uint8 (p x 255, argmax kept; see `quantise`).

The RLE encoder is vectorised over the whole label map: one pass finds every run in column-major
order for all classes at once, and the COCO counts string (LEB128-like 5-bit groups with a sign
bit, each count from the fourth on stored as a delta to the one two places before) is built with
array operations. It matches `pycocotools.mask.encode` byte for byte (see the tests).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

PNG_COMPRESS_LEVEL = 1  # label maps are long runs: level 1 is ~as small as 9 and several times faster


def encode_png(labels: np.ndarray, palette: Sequence[Sequence[int]]) -> bytes:
    """An 8-bit palette PNG whose pixel values are the class ids and whose colours are the card's."""
    image = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8))
    image.putpalette([channel for colour in palette for channel in colour])  # mode L -> P
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def encode_grey_png(values: np.ndarray) -> bytes:
    """An 8-bit greyscale PNG of uint8 [H, W] values."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(values, dtype=np.uint8), mode="L").save(
        buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def quantise(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """float [H, W, C] -> uint8 round(p x 255), with the argmax kept equal to `labels`.

    Rounding is monotone, so it can only turn a strict winner into a tie; where the first of the
    tied classes is not `labels`, the label's value goes up by one (each pixel still sums to
    255 +- C/2 + 1, i.e. 1 within (C + 2)/510).
    """
    quantised = np.rint(np.clip(probabilities, 0.0, 1.0) * 255).astype(np.uint8)
    rows, cols = np.nonzero(quantised.argmax(axis=-1) != labels)
    quantised[rows, cols, labels[rows, cols]] += 1
    return quantised


def encode_npy(array: np.ndarray) -> bytes:
    """NumPy's own `.npy` format: `np.load(io.BytesIO(body))` reads it back with shape and dtype."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def column_major_runs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of equal values in column-major (Fortran) order: (values, starts, lengths)."""
    flat = np.asarray(labels).ravel(order="F")
    if flat.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return flat[:0], empty, empty
    starts = np.flatnonzero(np.concatenate(([True], flat[1:] != flat[:-1])))
    lengths = np.diff(np.append(starts, flat.size))
    return flat[starts], starts, lengths


def rle_counts(starts: np.ndarray, lengths: np.ndarray, total: int) -> np.ndarray:
    """COCO counts (alternating 0-run, 1-run, ..., starting with 0s) from the 1-runs of one mask."""
    ends = starts + lengths
    gaps = starts - np.concatenate(([0], ends[:-1]))
    counts = np.empty(2 * len(starts) + 1, dtype=np.int64)
    counts[0:-1:2] = gaps
    counts[1::2] = lengths
    counts[-1] = total - (ends[-1] if len(ends) else 0)
    return counts if counts[-1] > 0 or len(counts) == 1 else counts[:-1]


def counts_to_string(counts: np.ndarray) -> str:
    """The COCO compressed-RLE string of a counts array (pycocotools' rleToString, vectorised)."""
    counts = np.asarray(counts, dtype=np.int64)
    values = counts.copy()
    values[3:] -= counts[1:-2]  # sic: pycocotools deltas from the fourth count on (`if (i > 2)`)
    # Each value becomes 5-bit groups, low first; a group's 0x20 bit says "more follow"; the last
    # group's 0x10 bit is the sign, so stop once the rest is 0 (sign clear) or -1 (sign set).
    max_groups = 14  # 64-bit values need at most ceil(64 / 5) groups
    shifts = 5 * np.arange(max_groups, dtype=np.int64)
    groups = (values[:, None] >> shifts[None, :]) & 0x1F
    rest = values[:, None] >> (shifts[None, :] + 5)
    done = np.where(groups & 0x10, rest == -1, rest == 0)
    n_groups = np.argmax(done, axis=1) + 1
    index = np.arange(max_groups)[None, :]
    chars = groups | np.where(index < (n_groups - 1)[:, None], 0x20, 0)
    chars = (chars + 48)[index < n_groups[:, None]]
    return chars.astype(np.uint8).tobytes().decode("ascii")


def encode_rle(labels: np.ndarray) -> dict[int, tuple[int, str]]:
    """For every class id present in `labels`: (area in pixels, COCO compressed-RLE counts string)."""
    values, starts, lengths = column_major_runs(labels)
    result: dict[int, tuple[int, str]] = {}
    for class_id in np.unique(values):
        own = values == class_id
        counts = rle_counts(starts[own], lengths[own], labels.size)
        result[int(class_id)] = (int(lengths[own].sum()), counts_to_string(counts))
    return result
