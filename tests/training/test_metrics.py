"""Metrics against hand-made masks, in NumPy and inside Keras."""

import numpy as np
import pytest

from training.fit_metrics import ForegroundDice, MeanIoU
from training.metrics import confusion_matrix, summarize

TRUTH = np.array([[0, 0, 1, 1],
                  [0, 0, 1, 1],
                  [2, 2, 2, 255]])
PRED = np.array([[0, 1, 1, 1],
                 [0, 0, 1, 0],
                 [2, 2, 1, 0]])


def test_confusion_matrix_counts_and_ignores():
    confusion = confusion_matrix(TRUTH, PRED, num_classes=3, ignore_index=255)
    assert confusion.tolist() == [[3, 1, 0], [1, 3, 0], [0, 1, 2]]


def test_summary_matches_hand_computation():
    scores = summarize(confusion_matrix(TRUTH, PRED, 3, 255), ["a", "b", "c"])
    iou = [3 / 5, 3 / 6, 2 / 3]
    assert scores["per_class_iou"] == pytest.approx(dict(zip("abc", iou)))
    assert scores["mean_iou"] == pytest.approx(np.mean(iou))
    assert scores["per_class_dice"]["b"] == pytest.approx(6 / 9)
    assert scores["dice"] == pytest.approx(np.mean([6 / 9, 4 / 5]))  # foreground classes b, c
    assert scores["pixel_accuracy"] == pytest.approx(8 / 11)


def test_absent_class_is_left_out_of_the_mean():
    scores = summarize(confusion_matrix([0, 0, 1], [0, 0, 1], 3), ["a", "b", "c"])
    assert scores["per_class_iou"]["c"] is None
    assert scores["mean_iou"] == pytest.approx(1.0)


def test_mismatched_sizes_are_an_error():
    with pytest.raises(ValueError, match="differ"):
        confusion_matrix(np.zeros(4), np.zeros(5), 2)


def test_keras_metrics_agree_with_numpy():
    valid = TRUTH != 255
    one_hot = np.eye(3, dtype=np.float32)[np.where(valid, TRUTH, 0)] * valid[..., None]
    logits = np.eye(3, dtype=np.float32)[PRED] * 5.0
    miou, dice = MeanIoU(3), ForegroundDice(3)
    for metric in (miou, dice):
        metric.update_state(one_hot[None, :2], logits[None, :2])  # two batches accumulate
        metric.update_state(one_hot[None, 2:], logits[None, 2:])
    expected = summarize(confusion_matrix(TRUTH, PRED, 3, 255), ["a", "b", "c"])
    assert float(miou.result()) == pytest.approx(expected["mean_iou"], rel=1e-5)
    assert float(dice.result()) == pytest.approx(expected["dice"], rel=1e-5)
    miou.reset_state()
    assert float(miou.result()) == 0.0
    ids = TRUTH.astype(np.uint8)[None]  # class ids with 255 = ignored, as the JAX loaders send
    miou.update_state(ids, logits[None])
    assert float(miou.result()) == pytest.approx(expected["mean_iou"], rel=1e-5)
