"""Segmentation metrics: one confusion matrix, and every score derived from it.

``confusion_matrix``/``summarize`` are plain NumPy, for evaluation at the original resolution.
``ConfusionMatrixMetric`` and its subclasses accumulate the same matrix inside ``model.fit`` from
one-hot labels (all-zero rows = ignored) and logits, with ``keras.ops`` so any backend runs them.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int,
                     ignore_index: int | None = None) -> np.ndarray:
    """``[true, predicted]`` pixel counts; pixels labelled ``ignore_index`` (or >= C) are skipped."""
    y_true = np.asarray(y_true).ravel().astype(np.int64)
    y_pred = np.asarray(y_pred).ravel().astype(np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"label and prediction sizes differ: {y_true.size} vs {y_pred.size}")
    keep = (y_true >= 0) & (y_true < num_classes)
    if ignore_index is not None:
        keep &= y_true != ignore_index
    counts = np.bincount(y_true[keep] * num_classes + y_pred[keep], minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def summarize(confusion: np.ndarray, class_names: Sequence[str]) -> dict:
    """mIoU, per-class IoU and Dice, pixel accuracy. Classes absent from both truth and
    prediction get ``None`` and are left out of the means (the usual convention)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diag(confusion)
    truth, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    iou = _safe_ratio(true_positive, truth + predicted - true_positive)
    dice = _safe_ratio(2 * true_positive, truth + predicted)
    foreground_dice = dice[1:] if len(dice) > 1 else dice

    def as_dict(values):
        return {name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, values)}

    def nan_mean(values):
        return float(np.nanmean(values)) if np.any(~np.isnan(values)) else 0.0

    return {
        "mean_iou": nan_mean(iou),
        "per_class_iou": as_dict(iou),
        "dice": nan_mean(foreground_dice),
        "per_class_dice": as_dict(dice),
        "pixel_accuracy": float(true_positive.sum() / max(confusion.sum(), 1)),
        "confusion_matrix": confusion.astype(np.int64).tolist(),
    }


class ConfusionMatrixMetric(keras.metrics.Metric):
    """Accumulates the confusion matrix over batches; subclasses read a score off it."""

    def __init__(self, num_classes: int, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.confusion = self.add_variable(shape=(num_classes, num_classes), initializer="zeros",
                                           dtype="float32", name="confusion")

    def update_state(self, y_true, y_pred, sample_weight=None):
        valid = ops.reshape(ops.sum(ops.cast(y_true, "float32"), axis=-1), (-1,))
        truth = ops.reshape(ops.argmax(y_true, axis=-1), (-1,))
        predicted = ops.reshape(ops.argmax(y_pred, axis=-1), (-1,))
        index = ops.cast(truth * self.num_classes + predicted, "int32")
        counts = ops.bincount(index, weights=valid, minlength=self.num_classes * self.num_classes)
        counts = ops.reshape(ops.cast(counts, "float32")[: self.num_classes * self.num_classes],
                             (self.num_classes, self.num_classes))
        self.confusion.assign_add(counts)

    def reset_state(self):
        self.confusion.assign(ops.zeros_like(self.confusion))

    def _iou_and_dice(self):
        true_positive = ops.diagonal(self.confusion)
        truth, predicted = ops.sum(self.confusion, axis=1), ops.sum(self.confusion, axis=0)
        present = ops.cast(truth + predicted > 0, "float32")
        iou = true_positive / ops.maximum(truth + predicted - true_positive, 1.0)
        dice = 2.0 * true_positive / ops.maximum(truth + predicted, 1.0)
        return iou, dice, present

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name}


class MeanIoU(ConfusionMatrixMetric):
    """Mean IoU over the classes present in truth or prediction."""

    def __init__(self, num_classes: int, name: str = "miou", **kwargs):
        super().__init__(num_classes, name=name, **kwargs)

    def result(self):
        iou, _, present = self._iou_and_dice()
        return ops.sum(iou * present) / ops.maximum(ops.sum(present), 1.0)


class ForegroundDice(ConfusionMatrixMetric):
    """Mean Dice over the non-background classes (class 0 is background)."""

    def __init__(self, num_classes: int, name: str = "dice", **kwargs):
        super().__init__(num_classes, name=name, **kwargs)

    def result(self):
        _, dice, present = self._iou_and_dice()
        dice, present = dice[1:], present[1:]
        return ops.sum(dice * present) / ops.maximum(ops.sum(present), 1.0)
