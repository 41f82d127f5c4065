"""PNG and COCO RLE encoders, checked against Pillow and pycocotools on synthetic and real masks."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from service.encoding import counts_to_string, encode_png, encode_rle

mask_api = pytest.importorskip("pycocotools.mask", reason="pycocotools (dev dependency) is the RLE reference")
# pycocotools' decode still calls __array__ the NumPy 1 way; harmless, and not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def reference_counts(binary: np.ndarray) -> str:
    return mask_api.encode(np.asfortranarray(binary.astype(np.uint8)))["counts"].decode()


def assert_matches_pycocotools(labels: np.ndarray) -> None:
    encoded = encode_rle(labels)
    assert sorted(encoded) == sorted(int(v) for v in np.unique(labels))
    for class_id, (area, counts) in encoded.items():
        binary = labels == class_id
        assert counts == reference_counts(binary)
        assert area == int(binary.sum())
        rle = {"size": list(labels.shape), "counts": counts.encode()}
        assert np.array_equal(mask_api.decode(rle), binary)


@pytest.mark.parametrize("seed", range(40))
def test_rle_matches_pycocotools_on_random_label_maps(seed):
    rng = np.random.default_rng(seed)
    height, width = rng.integers(1, 60, size=2)
    blocks = rng.integers(0, rng.integers(1, 6), size=(rng.integers(1, 6), rng.integers(1, 6)), dtype=np.uint8)
    labels = np.kron(blocks, np.ones((height, width), np.uint8))  # runs of many lengths, incl. > 2**5
    if seed % 2:
        labels = rng.integers(0, 3, size=labels.shape, dtype=np.uint8)  # many short runs
    assert_matches_pycocotools(labels)


@pytest.mark.parametrize(
    "labels",
    [np.zeros((5, 7), np.uint8), np.ones((5, 7), np.uint8), np.eye(6, dtype=np.uint8), np.array([[1]], np.uint8),
     np.arange(12, dtype=np.uint8).reshape(3, 4), np.tile(np.array([[0, 1]], np.uint8), (1, 40000))],
    ids=["all-background", "all-one-class", "diagonal", "one-pixel", "every-pixel-its-own-class", "long-row"],
)
def test_rle_edge_cases(labels):
    assert_matches_pycocotools(labels)


def test_rle_of_large_runs_needs_many_groups():
    labels = np.zeros((3000, 4000), np.uint8)
    labels[2999, 3999] = 1  # a zero run of 11,999,999 and a one run of 1
    assert_matches_pycocotools(labels)


def test_rle_matches_pycocotools_on_real_masks(dataset_root):
    camvid = sorted((dataset_root / "camvid" / "valannot").glob("*.png"))[:3]
    kvasir = sorted((dataset_root / "kvasir-seg" / "masks").glob("*.png"))[:2]
    for path in camvid:
        assert_matches_pycocotools(np.asarray(Image.open(path)))
    for path in kvasir:
        assert_matches_pycocotools((np.asarray(Image.open(path).convert("L")) > 127).astype(np.uint8))


def test_counts_string_handles_negative_deltas():
    # Deltas against the count two places back go negative and need the sign bit.
    counts = np.array([100, 3, 2, 1, 50, 1, 0], dtype=np.int64)
    reference = mask_api.frPyObjects({"size": [1, int(counts.sum())], "counts": counts.tolist()}, 1, int(counts.sum()))
    assert counts_to_string(counts) == reference["counts"].decode()


def test_png_is_indexed_with_the_card_palette_and_class_ids():
    palette = [(0, 0, 0), (255, 0, 0), (10, 20, 30)]
    labels = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    image = Image.open(io.BytesIO(encode_png(labels, palette)))
    assert image.format == "PNG" and image.mode == "P" and image.size == (3, 2)
    assert np.array_equal(np.asarray(image), labels)
    assert image.getpalette()[: 3 * len(palette)] == [c for colour in palette for c in colour]
