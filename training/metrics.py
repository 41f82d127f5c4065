"""Segmentation scores: one confusion matrix, and every score derived from it.

Plain NumPy, so evaluating an exported ONNX file needs no TensorFlow; the streaming versions used
inside ``model.fit`` are in ``training.fit_metrics``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
