"""Loss values on hand-computed cases, and the class-weight formula."""

import math

import numpy as np
import pytest

from training.losses import (
    DiceFocalLoss,
    WeightedCrossEntropy,
    class_weights_from_counts,
    dice_loss,
    focal_loss,
    lovasz_softmax_loss,
    make_loss,
    weighted_cross_entropy,
)


def _logits_for(probabilities):
    """Logits whose softmax is exactly ``probabilities``."""
    return np.log(np.asarray(probabilities, dtype=np.float32))


def _value(tensor):
    return float(np.asarray(tensor))


# Two pixels, two classes: pixel 0 is class 0 predicted 0.8, pixel 1 is class 1 predicted 0.6.
Y_TRUE = np.array([[[[1, 0], [0, 1]]]], dtype=np.float32)
PROBS = np.array([[[[0.8, 0.2], [0.4, 0.6]]]], dtype=np.float32)


def test_dice_matches_hand_computation():
    # class 0: I=0.8, S=1+1.2 -> (1.6+1)/(2.2+1); class 1: I=0.6, S=1+0.8 -> (1.2+1)/(1.8+1)
    expected = 1 - ((2.6 / 3.2) + (2.2 / 2.8)) / 2
    assert _value(dice_loss(Y_TRUE, _logits_for(PROBS))) == pytest.approx(expected, rel=1e-5)


def test_focal_matches_hand_computation():
    expected = (0.25 * 0.2**2 * -math.log(0.8) + 0.25 * 0.4**2 * -math.log(0.6)) / 2
    assert _value(focal_loss(Y_TRUE, _logits_for(PROBS))) == pytest.approx(expected, rel=1e-5)


def test_seed_loss_is_weighted_sum():
    combined = _value(DiceFocalLoss()(Y_TRUE, _logits_for(PROBS)))
    dice, focal = _value(dice_loss(Y_TRUE, _logits_for(PROBS))), _value(focal_loss(Y_TRUE, _logits_for(PROBS)))
    assert combined == pytest.approx(0.7 * dice + 0.3 * focal, rel=1e-5)


def test_weighted_cross_entropy_matches_hand_computation():
    weights = [1.0, 3.0]
    expected = (1.0 * -math.log(0.8) + 3.0 * -math.log(0.6)) / 2
    assert _value(weighted_cross_entropy(Y_TRUE, _logits_for(PROBS), weights)) == pytest.approx(expected, rel=1e-5)
    assert _value(WeightedCrossEntropy(weights)(Y_TRUE, _logits_for(PROBS))) == pytest.approx(expected, rel=1e-5)


def test_ignored_pixels_contribute_nothing():
    """An all-zero one-hot row (ignore label) changes no loss, whatever is predicted there."""
    y_true = np.concatenate([Y_TRUE, np.zeros((1, 1, 1, 2), np.float32)], axis=2)
    probs = np.concatenate([PROBS, np.array([[[[0.01, 0.99]]]], np.float32)], axis=2)
    for loss in (dice_loss, focal_loss, lovasz_softmax_loss, lambda t, p: weighted_cross_entropy(t, p, [1.0, 2.0])):
        assert _value(loss(y_true, _logits_for(probs))) == pytest.approx(_value(loss(Y_TRUE, _logits_for(PROBS))),
                                                                        rel=1e-5)


def test_class_ids_give_the_same_losses_as_one_hot_labels():
    """The JAX loaders send uint8 class ids (255 = ignored); every loss reads them as one-hot."""
    y_true = np.concatenate([Y_TRUE, np.zeros((1, 1, 1, 2), np.float32)], axis=2)
    ids = np.array([[[0, 1, 255]]], dtype=np.uint8)
    probs = np.concatenate([PROBS, np.array([[[[0.01, 0.99]]]], np.float32)], axis=2)
    losses = (dice_loss, focal_loss, lambda t, p: weighted_cross_entropy(t, p, [1.0, 2.0]),
              lambda t, p: make_loss("weighted_ce_dice", [1.0, 2.0])(t, p))
    for loss in losses:
        assert _value(loss(ids, _logits_for(probs))) == pytest.approx(_value(loss(y_true, _logits_for(probs))),
                                                                     rel=1e-6)


def test_lovasz_of_hard_predictions_is_one_minus_the_mean_iou_over_present_classes():
    """The Lovász extension equals the set function on hard (0/1) predictions: 1 - IoU per class."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, (2, 16, 16))
    truth[truth == 3] = 2  # class 3 absent: left out of the mean
    truth[0, 0] = 255  # ignored
    predicted = np.where(rng.random(truth.shape) < 0.2, (truth + 1) % 3, truth)
    predicted[truth == 255] = 0
    logits = (np.eye(4)[predicted] * 100.0).astype(np.float32)
    labelled = truth != 255
    ious = [((truth == c) & (predicted == c)).sum() / (((truth == c) | (predicted == c)) & labelled).sum()
            for c in range(3)]
    assert _value(lovasz_softmax_loss(truth.astype(np.int32), logits)) == pytest.approx(1 - np.mean(ious), rel=1e-5)
    # The training loss: weighted CE on every pixel plus Lovász on every 2nd row and column.
    ids, soft = truth.astype(np.int32), logits / 30.0
    expected = _value(weighted_cross_entropy(ids, soft, [1.0, 2.0, 1.0, 1.0])) + _value(
        lovasz_softmax_loss(ids[:, ::2, ::2], soft[:, ::2, ::2]))
    assert _value(make_loss("weighted_ce_lovasz", [1.0, 2.0, 1.0, 1.0])(ids, soft)) == pytest.approx(expected, rel=1e-5)


def test_perfect_prediction_has_near_zero_loss():
    confident = np.where(Y_TRUE > 0, 0.9999, 0.0001).astype(np.float32)
    assert _value(DiceFocalLoss()(Y_TRUE, _logits_for(confident))) < 1e-3


def test_class_weight_formula():
    weights = class_weights_from_counts([1000, 100, 0])
    assert weights == pytest.approx([1 / math.log(2.02), 1 / math.log(1.12), 1 / math.log(1.02)], rel=1e-6)
    assert weights[2] > weights[1] > weights[0]


@pytest.mark.parametrize("counts", [[], [0, 0], [-1, 5]])
def test_class_weights_reject_bad_counts(counts):
    with pytest.raises(ValueError):
        class_weights_from_counts(counts)


def test_make_loss_checks_its_arguments():
    assert isinstance(make_loss("dice_focal"), DiceFocalLoss)
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("hinge")
    with pytest.raises(ValueError, match="class weights"):
        make_loss("weighted_ce")
