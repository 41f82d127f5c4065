"""Appearance-shift validation splits (`<split>@<shift>`): fixed per image, masks untouched.

The tiny data set is in CamVid's layout (any reader takes `@<shift>`)."""

import numpy as np
import pytest

from training.datasets import get_dataset
from training.datasets.shifted import (
    MIXED_COUNT,
    NAMES,
    apply_shift,
    picks,
    split_and_shift,
)


@pytest.fixture
def tiny_root(tmp_path):
    from PIL import Image

    for split, names in {"train": ["AAA_001", "AAA_002"], "val": ["BBB_001", "BBB_002", "BBB_003"]}.items():
        for index, name in enumerate(names):
            (tmp_path / split).mkdir(exist_ok=True)
            (tmp_path / f"{split}annot").mkdir(exist_ok=True)
            rows, cols = np.mgrid[:240, :320]  # larger than "lowres" shrinks to, textured for blur/JPEG
            texture = np.random.default_rng(index).integers(0, 60, (240, 320))
            image = np.stack([rows, cols * 0.7, (rows + cols + 40 * index) % 196 + texture], -1).astype(np.uint8)
            Image.fromarray(image).save(tmp_path / split / f"{name}.png")
            Image.fromarray(((rows // 8 + cols // 8) % 11).astype(np.uint8), mode="L").save(
                tmp_path / f"{split}annot" / f"{name}.png")
    return tmp_path


def test_split_and_shift_parses():
    assert split_and_shift("val") == ("val", None)
    assert split_and_shift("heldout-0001TP@mixed") == ("heldout-0001TP", "mixed")
    with pytest.raises(ValueError):
        split_and_shift("val@")


@pytest.mark.parametrize("shift", NAMES)
def test_each_shift_changes_images_not_masks_and_is_fixed(tiny_root, shift):
    clean = get_dataset("camvid", root=tiny_root, split="val")
    shifted = get_dataset("camvid", root=tiny_root, split=f"val@{shift}")
    assert shifted.split == f"val@{shift}" and shifted.samples == clean.samples
    changed = 0
    for sample in clean.samples:
        image, mask = clean.load_sample(sample)
        image_s, mask_s = shifted.load_sample(sample)
        np.testing.assert_array_equal(mask_s, mask)
        assert image_s.dtype == np.uint8 and image_s.shape == image.shape
        np.testing.assert_array_equal(shifted.load_sample(sample)[0], image_s)  # same every time
        changed += np.abs(image_s.astype(int) - image).mean() > 1.0
    assert changed == len(clean.samples)


def test_shift_does_not_depend_on_order_or_limit(tiny_root):
    shifted = get_dataset("camvid", root=tiny_root, split="val@mixed")
    last = shifted.samples[-1]
    alone = shifted.load_sample(last)[0]
    for sample in shifted.samples:
        shifted.load_sample(sample)
    np.testing.assert_array_equal(shifted.load_sample(last)[0], alone)


def test_mixed_picks_three_distinct_with_one_exposure_at_most():
    for seed in range(50):
        chosen = picks("mixed", np.random.default_rng(seed))
        assert len(chosen) == len(set(chosen)) == MIXED_COUNT
        assert not {"dark", "bright"} <= set(chosen)


def test_large_images_are_shifted_at_the_working_resolution():
    """A blur of sigma s means s pixels of the 512 px network input, whatever the frame size."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    large = np.asarray(np.kron(small, np.ones((4, 4, 1))), np.uint8)  # 1024 px, same content
    out_small = apply_shift(small, "blur", np.random.default_rng(1))
    out_large = apply_shift(large, "blur", np.random.default_rng(1))
    assert out_large.shape == large.shape
    down = out_large.reshape(256, 4, 256, 4, 3).mean(axis=(1, 3))
    # the 1024 px frame went through 512 px, so it is blurred by about half as many source pixels
    assert np.abs(down - out_small).mean() < np.abs(down - small).mean()


def test_unknown_shift_is_an_error(tiny_root):
    with pytest.raises(ValueError, match="unknown appearance shift"):
        get_dataset("camvid", root=tiny_root, split="val@sepia")


def test_real_kvasir_val_shift_keeps_the_fixed_ids(real_data_root):
    clean, shifted = get_dataset("kvasir", split="val"), get_dataset("kvasir", split="val@mixed")
    assert len(shifted.samples) == 100 and shifted.samples == clean.samples
