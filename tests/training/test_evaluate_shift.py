"""`python -m training.evaluate --split val@<shift>` scores the shifted images against the same masks."""

import numpy as np
import pytest

from training import evaluate
from training.datasets import get_dataset


def brightness_runner(images: np.ndarray):
    """A stand-in model whose 'polyp' probability is the pixel's brightness: any shift moves it."""
    bright = images.astype(np.float32).mean(axis=-1) / 255.0
    probabilities = np.stack([1.0 - bright, bright], axis=-1)
    return probabilities, probabilities.argmax(-1).astype(np.uint8)


@pytest.mark.usefixtures("real_data_root")
def test_shifted_split_is_scored_on_the_same_pixels_with_other_predictions():
    target = evaluate.Target(brightness_runner, (128, 128), "kvasir", None, {"source": {"kind": "stub"}})
    clean = evaluate.evaluate(target, get_dataset("kvasir", split="val"), limit=2, progress=False)
    dark = evaluate.evaluate(target, get_dataset("kvasir", split="val@dark"), limit=2, progress=False)
    assert clean["split"] == "val" and dark["split"] == "val@dark" and dark["images"] == 2
    confusion_clean, confusion_dark = np.array(clean["confusion_matrix"]), np.array(dark["confusion_matrix"])
    assert confusion_clean.sum() == confusion_dark.sum()  # same masks, same pixels
    np.testing.assert_array_equal(confusion_clean.sum(axis=1), confusion_dark.sum(axis=1))  # same truth
    # darker images -> fewer pixels above 0.5 brightness -> fewer predicted 'polyp'
    assert confusion_dark[:, 1].sum() < confusion_clean[:, 1].sum()


@pytest.mark.usefixtures("real_data_root")
def test_shift_report_has_a_row_per_shift_relative_to_clean():
    from training.shift_report import report, table

    target = evaluate.Target(brightness_runner, (64, 64), "kvasir", None, {"source": {"kind": "stub"}})
    rows = report(target, "kvasir", None, "val", ["dark", "bright"], limit=1)
    assert list(rows) == ["none", "dark", "bright"]
    assert rows["dark"]["split"] == "val@dark"
    lines = table(rows).splitlines()
    assert len(lines) == 5 and lines[2].startswith("| none | 1 |") and lines[2].endswith("| +0.0000 |")
    assert rows["dark"]["dice"] != rows["bright"]["dice"]
