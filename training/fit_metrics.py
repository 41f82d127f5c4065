"""Streaming metrics for ``model.fit``: the confusion matrix of ``training.metrics``, accumulated
over batches from one-hot labels (all-zero rows = ignored) or class ids, and logits, with ``keras.ops`` so any
backend runs them."""

from __future__ import annotations

import keras
from keras import ops

from training.losses import dense_labels


class ConfusionMatrixMetric(keras.metrics.Metric):
    """Accumulates the confusion matrix over batches; subclasses read a score off it."""

    def __init__(self, num_classes: int, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.confusion = self.add_variable(shape=(num_classes, num_classes), initializer="zeros",
                                           dtype="float32", name="confusion")

    def update_state(self, y_true, y_pred, sample_weight=None):
        # truth^T @ predicted one-hots counts every (true, predicted) pair; ignored pixels have an
        # all-zero truth row. (``ops.bincount`` would need a static length under JAX's jit.)
        truth = ops.reshape(dense_labels(y_true, self.num_classes), (-1, self.num_classes))
        predicted = ops.one_hot(ops.reshape(ops.argmax(y_pred, axis=-1), (-1,)), self.num_classes, dtype="float32")
        self.confusion.assign_add(ops.matmul(ops.transpose(truth), predicted))

    def reset_state(self):
        self.confusion.assign(ops.zeros((self.num_classes, self.num_classes), dtype="float32"))

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
