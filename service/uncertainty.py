"""Where the model is unsure: normalised per-pixel entropy, its summary, and per-image drift statistics.

One definition throughout: entropy H(p) = -sum_c p_c ln p_c divided by ln C, so 0 is certain and
1 is uniform over the C classes whatever C is; confidence is 1 - H. The uncertainty map, the JSON
summary, the per-class confidence and the drift metrics all read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HIGH_ENTROPY_THRESHOLD = 0.5  # summary's "uncertain pixel": more than half the maximal entropy
DRIFT_STRIDE = 4  # drift statistics read every 4th row and column of the model-resolution output
_TINY = 1e-12


def normalised_entropy(probabilities: np.ndarray) -> np.ndarray:
    """float32 [..., C] probabilities -> float32 [...] entropy in [0, 1] (divided by ln C)."""
    classes = probabilities.shape[-1]
    p = np.clip(probabilities.astype(np.float32, copy=False), _TINY, 1.0)
    entropy = -(p * np.log(p)).sum(axis=-1) / np.float32(np.log(classes))
    return np.clip(entropy, 0.0, 1.0)


def entropy_image(entropy: np.ndarray) -> np.ndarray:
    """Entropy in [0, 1] -> uint8 grey levels: 0 = certain, 255 = uniform."""
    return np.rint(entropy * 255).astype(np.uint8)


def summary(entropy: np.ndarray, labels: np.ndarray, class_names: list[str],
            threshold: float = HIGH_ENTROPY_THRESHOLD) -> dict:
    """The `uncertainty` field of JSON outputs: mean entropy, share of pixels above `threshold`, and
    the mean confidence (1 - entropy) of the pixels predicted as each class present."""
    confidence = 1.0 - entropy
    flat_labels = labels.ravel()
    counts = np.bincount(flat_labels, minlength=len(class_names))
    sums = np.bincount(flat_labels, weights=confidence.ravel(), minlength=len(class_names))
    return {
        "mean_entropy": round(float(entropy.mean()), 6),
        "entropy_threshold": threshold,
        "high_entropy_fraction": round(float((entropy > threshold).mean()), 6),
        "class_confidence": {class_names[c]: round(float(sums[c] / counts[c]), 6)
                             for c in range(len(class_names)) if counts[c]},
    }


@dataclass(frozen=True)
class ImageStatistics:
    """What the drift metrics record for one image."""

    area_fractions: np.ndarray  # float [C]: share of the image's pixels predicted as each class
    mean_confidence: float  # 1 - mean normalised entropy


def image_statistics(probabilities: np.ndarray, labels: np.ndarray, num_classes: int,
                     stride: int = DRIFT_STRIDE) -> ImageStatistics:
    """Drift statistics of one image at the model's resolution (padding already cropped), read on a
    `stride` grid: 1/16 of the pixels is plenty for a per-image mean and costs ~1 ms instead of ~10."""
    sampled_labels = labels[::stride, ::stride]
    counts = np.bincount(sampled_labels.ravel(), minlength=num_classes)[:num_classes]
    entropy = normalised_entropy(probabilities[::stride, ::stride])
    return ImageStatistics(counts / max(1, sampled_labels.size), float(1.0 - entropy.mean()))
