"""Segmentation losses.

Every loss takes ``y_true`` as one-hot labels ``[B, H, W, C]`` in which ignored or padded pixels
are all-zero rows, or as class ids ``[B, H, W]`` (ignored: 255), which ``dense_labels`` turns into
that one-hot on the device (the JAX loaders send ids: 1/C of the bytes). ``y_pred`` is logits.
An all-zero row contributes nothing, so the ignore label never needs special cases downstream.
Written with ``keras.ops`` only, so the TensorFlow and JAX backends both run it.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

_EPSILON = 1e-6


def dense_labels(y_true, num_classes: int):
    """float32 one-hot ``[..., C]`` from one-hot labels or from class ids one rank lower; an id
    outside ``0..C-1`` (the ignore label) becomes an all-zero row, as ``one_hot`` gives it."""
    if len(y_true.shape) == 3:
        return ops.one_hot(ops.cast(y_true, "int32"), num_classes, dtype="float32")
    return ops.cast(y_true, "float32")


def _valid_pixel_count(y_true):
    return ops.maximum(ops.sum(y_true), 1.0)


def dice_loss(y_true, logits, smooth: float = 1.0):
    """1 - mean soft Dice over classes, with intersections summed over the whole batch.

    Batch-level sums keep the loss defined when a class is absent from one image.
    """
    y_true = dense_labels(y_true, logits.shape[-1])
    valid = ops.sum(y_true, axis=-1, keepdims=True)
    probs = ops.softmax(ops.cast(logits, "float32"), axis=-1) * valid
    axes = tuple(range(len(y_true.shape) - 1))
    intersection = ops.sum(y_true * probs, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(probs, axis=axes)
    dice = (2.0 * intersection + smooth) / (total + smooth)
    return 1.0 - ops.mean(dice)


def focal_loss(y_true, logits, alpha: float = 0.25, gamma: float = 2.0):
    """Focal loss (Lin et al. 2017), mean over labelled pixels: -alpha (1-p)^gamma log p."""
    y_true = dense_labels(y_true, logits.shape[-1])
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    probs = ops.exp(log_probs)
    per_class = -alpha * ops.power(1.0 - probs, gamma) * log_probs * y_true
    return ops.sum(per_class) / _valid_pixel_count(y_true)


def weighted_cross_entropy(y_true, logits, class_weights):
    """Cross-entropy with one weight per class, mean over labelled pixels."""
    y_true = dense_labels(y_true, logits.shape[-1])
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    weights = ops.convert_to_tensor(np.asarray(class_weights, dtype="float32"))
    return -ops.sum(y_true * log_probs * weights) / _valid_pixel_count(y_true)


def _lovasz_gradient(fg_sorted):
    """Gradient of the Lovász extension of the Jaccard loss at ``fg_sorted`` (labels in the order
    of decreasing error): the increments of 1 - IoU as each pixel is counted wrong in turn."""
    positives = ops.sum(fg_sorted)
    intersection = positives - ops.cumsum(fg_sorted)
    union = positives + ops.cumsum(1.0 - fg_sorted)
    jaccard = 1.0 - intersection / union
    return ops.concatenate([jaccard[:1], jaccard[1:] - jaccard[:-1]], axis=0)


def lovasz_softmax_loss(y_true, logits):
    """Lovász-softmax (Berman et al., CVPR 2018): a convex surrogate of 1 - IoU per class, over the
    whole batch, mean over the classes present. It optimises the mean IoU that is reported, which
    per-pixel losses leave to the frequent classes. Ignored pixels sort last and weigh nothing."""
    num_classes = logits.shape[-1]
    y_true = ops.reshape(dense_labels(y_true, num_classes), (-1, num_classes))
    probs = ops.reshape(ops.softmax(ops.cast(logits, "float32"), axis=-1), (-1, num_classes))
    valid = ops.sum(y_true, axis=-1)
    losses, present = [], []
    for index in range(num_classes):
        fg = y_true[:, index]
        errors = ops.where(valid > 0, ops.abs(fg - probs[:, index]), -1.0)
        order = ops.flip(ops.argsort(errors), axis=0)
        errors_sorted, fg_sorted = ops.take(errors, order), ops.take(fg, order)
        losses.append(ops.sum(ops.relu(errors_sorted) * ops.stop_gradient(_lovasz_gradient(fg_sorted))))
        present.append(ops.cast(ops.sum(fg) > 0, "float32"))
    losses, present = ops.stack(losses), ops.stack(present)
    return ops.sum(losses * present) / ops.maximum(ops.sum(present), 1.0)


def class_weights_from_counts(counts: Sequence[float], c: float = 1.02) -> np.ndarray:
    """w = 1 / ln(c + count / max(count)): rare classes weigh up to ~50x, frequent ~1.4x."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or np.any(counts < 0) or counts.max() <= 0:
        raise ValueError(f"class counts must be non-negative with a positive maximum, got {counts}")
    return (1.0 / np.log(c + counts / counts.max())).astype(np.float32)


@keras.saving.register_keras_serializable(package="training")
class DiceFocalLoss(keras.losses.Loss):
    """The seed's loss: dice_weight * Dice + focal_weight * Focal(alpha, gamma)."""

    def __init__(self, dice_weight=0.7, focal_weight=0.3, alpha=0.25, gamma=2.0, name="dice_focal", **kwargs):
        super().__init__(name=name, **kwargs)
        self.dice_weight, self.focal_weight = dice_weight, focal_weight
        self.alpha, self.gamma = alpha, gamma

    def call(self, y_true, y_pred):
        return self.dice_weight * dice_loss(y_true, y_pred) + self.focal_weight * focal_loss(
            y_true, y_pred, self.alpha, self.gamma
        )

    def get_config(self):
        return {**super().get_config(), "dice_weight": self.dice_weight, "focal_weight": self.focal_weight,
                "alpha": self.alpha, "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="training")
class WeightedCrossEntropy(keras.losses.Loss):
    """Class-weighted cross-entropy; weights usually from :func:`class_weights_from_counts`."""

    def __init__(self, class_weights, name="weighted_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.class_weights = [float(w) for w in class_weights]

    def call(self, y_true, y_pred):
        return weighted_cross_entropy(y_true, y_pred, self.class_weights)

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights}


@keras.saving.register_keras_serializable(package="training")
class WeightedCrossEntropyDice(WeightedCrossEntropy):
    """Weighted CE plus Dice: CE alone collapsed to all-background when training from scratch."""

    def __init__(self, class_weights, dice_weight=1.0, name="weighted_ce_dice", **kwargs):
        super().__init__(class_weights, name=name, **kwargs)
        self.dice_weight = dice_weight

    def call(self, y_true, y_pred):
        return super().call(y_true, y_pred) + self.dice_weight * dice_loss(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "dice_weight": self.dice_weight}


@keras.saving.register_keras_serializable(package="training")
class WeightedCrossEntropyLovasz(WeightedCrossEntropy):
    """Weighted CE plus Lovász-softmax: CE keeps every pixel's gradient, Lovász the per-class IoU."""

    def __init__(self, class_weights, lovasz_weight=1.0, name="weighted_ce_lovasz", **kwargs):
        super().__init__(class_weights, name=name, **kwargs)
        self.lovasz_weight = lovasz_weight

    def call(self, y_true, y_pred):
        # Lovász on every 2nd row and column: a quarter of the sorting (4 s -> 1 s a 512 px batch of
        # 8 on 2 cores), the same per-class IoU to within sampling noise.
        return super().call(y_true, y_pred) + self.lovasz_weight * lovasz_softmax_loss(
            y_true[:, ::2, ::2], y_pred[:, ::2, ::2])

    def get_config(self):
        return {**super().get_config(), "lovasz_weight": self.lovasz_weight}


LOSSES = ("dice_focal", "weighted_ce", "weighted_ce_dice", "weighted_ce_lovasz")


def make_loss(name: str, class_weights: Sequence[float] | None = None) -> keras.losses.Loss:
    """Loss by config name; the class-weighted ones need ``class_weights``."""
    if name == "dice_focal":
        return DiceFocalLoss()
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    if class_weights is None:
        raise ValueError(f"loss {name!r} needs class weights (computed from the training masks)")
    weighted = {"weighted_ce": WeightedCrossEntropy, "weighted_ce_dice": WeightedCrossEntropyDice,
                "weighted_ce_lovasz": WeightedCrossEntropyLovasz}
    return weighted[name](class_weights)
