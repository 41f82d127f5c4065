"""Parity: how closely one runtime's copy of a model reproduces its reference on the same images.

Measured as the largest absolute probability difference and the fraction of pixels with the same
label; a copy outside its tolerance is an error, never a warning. One table of tolerances serves
every check: training's exports against Keras, the INT8 and FP16 variants and TensorRT plans
against the FP32 ONNX file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# Tolerances per export kind: (max abs probability difference or None = not checked,
# minimum label agreement). Graph-mode TF already differs from eager Keras by ~3e-5 on a trained
# 512x512 model (fused kernels), so every fp32 export gets 1e-4; fp16 weights move probabilities
# by ~1e-3, so only their labels are checked.
TOLERANCES: dict[str, tuple[float | None, float]] = {
    "saved_model": (1e-4, 0.999),
    "onnx": (1e-4, 0.999),
    "tflite_fp32": (1e-4, 0.999),
    "tflite_fp16": (None, 0.99),
    # Against the FP32 ONNX file: 8-bit activations move probabilities by ~1e-2, so only labels.
    "onnx_int8": (None, 0.97),
    # build_engine.py, against the FP32 ONNX file: the FP16 ONNX it builds from, and the plan.
    "onnx_fp16": (None, 0.995),
    "tensorrt": (None, 0.995),
    # training.recover: a Keras model given the ONNX file's weights, against that file (fp32 both).
    "recovered_keras": (1e-4, 0.999),
}
DEFAULT_IMAGES = 4  # validation images each export is checked on


class ParityError(RuntimeError):
    """An export disagrees with the Keras model beyond its tolerance."""


@dataclass(frozen=True)
class Parity:
    """One measurement; ``as_dict`` is what the card and the engine sidecar record."""

    max_abs_prob_diff: float
    label_agreement: float
    images: int

    def as_dict(self) -> dict:
        return asdict(self)


def measure(reference: tuple[np.ndarray, np.ndarray], candidate: tuple[np.ndarray, np.ndarray]) -> Parity:
    """Compare ``(probabilities, labels)`` pairs computed on the same batch of images."""
    (ref_probabilities, ref_labels), (probabilities, labels) = reference, candidate
    if ref_probabilities.shape != probabilities.shape or ref_labels.shape != labels.shape:
        raise ParityError(f"output shapes differ: reference {ref_probabilities.shape}/{ref_labels.shape}, "
                          f"export {probabilities.shape}/{labels.shape}")
    difference = np.abs(ref_probabilities.astype(np.float64) - probabilities.astype(np.float64))
    return Parity(max_abs_prob_diff=float(difference.max()),
                  label_agreement=float(np.mean(ref_labels == labels)),
                  images=int(ref_labels.shape[0]))


def check(kind: str, parity: Parity) -> None:
    """Raise ``ParityError`` when ``parity`` is outside the tolerance for export ``kind``."""
    max_diff, min_agreement = TOLERANCES[kind]
    if max_diff is not None and not parity.max_abs_prob_diff <= max_diff:
        raise ParityError(f"{kind}: max abs probability difference {parity.max_abs_prob_diff:.3g} "
                          f"exceeds {max_diff:g} on {parity.images} images")
    if not parity.label_agreement >= min_agreement:
        raise ParityError(f"{kind}: label agreement {parity.label_agreement:.5f} is below "
                          f"{min_agreement} on {parity.images} images")
