"""The one way back from the model's input to the image: both restore rules a card can name."""

import numpy as np
import pytest

from modelcard.geometry import Placement, crop, letterbox, restore


def disc(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and two-class probabilities of a soft-edged disc, at model resolution."""
    yy, xx = np.mgrid[:size, :size]
    distance = np.hypot(yy - size / 2, xx - size / 2)
    foreground = 1 / (1 + np.exp((distance - size / 4) / 2))
    probabilities = np.stack([1 - foreground, foreground], axis=-1).astype(np.float32)
    return probabilities.argmax(axis=-1).astype(np.uint8), probabilities


@pytest.mark.parametrize("mode", ["labels-nearest", "probabilities-bilinear"])
def test_restore_gives_labels_at_exactly_the_original_size(mode):
    labels, probabilities = disc(64)
    restored, restored_probabilities = restore(mode, (150, 97), labels, probabilities)
    assert restored.shape == (150, 97) and restored.dtype == np.uint8
    assert set(np.unique(restored)) == {0, 1}
    if mode == "labels-nearest":
        assert restored_probabilities is None
    else:
        assert restored_probabilities.shape == (150, 97, 2)
        assert np.array_equal(restored, restored_probabilities.argmax(axis=-1))


def test_the_two_rules_differ_only_on_class_borders():
    labels, probabilities = disc(64)
    nearest, _ = restore("labels-nearest", (256, 256), labels, probabilities)
    bilinear, _ = restore("probabilities-bilinear", (256, 256), labels, probabilities)
    disagree = nearest != bilinear
    assert 0 < disagree.mean() < 0.02
    truth = disc(256)[0]
    assert (bilinear == truth).mean() >= (nearest == truth).mean()  # smoother borders, never worse here


def test_bilinear_restore_needs_the_probabilities_and_unknown_rules_are_refused():
    labels, _ = disc(16)
    with pytest.raises(ValueError, match="needs the probabilities"):
        restore("probabilities-bilinear", (32, 32), labels)
    with pytest.raises(ValueError, match="unknown restore mode"):
        restore("bicubic", (32, 32), labels)


def test_letterbox_pads_with_the_value_it_is_given_and_crop_cuts_exactly_the_padding():
    image = np.full((30, 60, 3), 7, np.uint8)
    canvas, placement = letterbox(image, (64, 64), pad_value=200)
    assert placement == Placement(top=16, left=0, height=32, width=64)
    assert (canvas[:16] == 200).all() and (canvas[48:] == 200).all()
    assert (crop(canvas, placement) == 7).all()
