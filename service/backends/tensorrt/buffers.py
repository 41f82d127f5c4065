"""Shapes and byte sizes of an engine's I/O tensors, kept apart from CUDA so they test on a CPU.

Buffers are sized once for the profile's largest batch; each request then uses the first
``batch`` rows of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """One engine I/O tensor: its dtype and its shape without the (dynamic) batch dimension."""

    name: str
    dtype: np.dtype
    sample_shape: tuple[int, ...]
    is_input: bool

    def __post_init__(self):
        if any(dim <= 0 for dim in self.sample_shape):
            raise ValueError(f"tensor {self.name!r} has a dynamic non-batch dimension "
                             f"{self.sample_shape}; only the batch may vary")

    def shape(self, batch: int) -> tuple[int, ...]:
        return (batch, *self.sample_shape)

    def nbytes(self, batch: int) -> int:
        return batch * int(np.prod(self.sample_shape)) * np.dtype(self.dtype).itemsize


def split_io(specs: list[TensorSpec]) -> tuple[TensorSpec, dict[str, TensorSpec]]:
    """The single input and the outputs by name; the exported graph has exactly one input."""
    inputs = [spec for spec in specs if spec.is_input]
    if len(inputs) != 1:
        raise ValueError(f"expected one input tensor, the engine has {[s.name for s in inputs]}")
    return inputs[0], {spec.name: spec for spec in specs if not spec.is_input}


def outputs_to_copy(outputs: dict[str, TensorSpec], want_probabilities: bool,
                    labels: str = "labels", probabilities: str = "probabilities") -> list[str]:
    """Outputs a request needs back on the host: the labels, plus probabilities if asked for.

    The probabilities are C times the size of the labels in float32, so skipping their copy is
    most of the device-to-host traffic of a labels-only request.
    """
    wanted = [labels, probabilities] if want_probabilities else [labels]
    missing = [name for name in wanted if name not in outputs]
    if missing:
        raise ValueError(f"engine has no output(s) {missing}; it has {sorted(outputs)}")
    return wanted


def check_images(images: np.ndarray, spec: TensorSpec, max_batch: int) -> int:
    """Validate a request batch against the input tensor; returns its batch size."""
    if not isinstance(images, np.ndarray) or images.dtype != spec.dtype:
        got = getattr(images, "dtype", type(images).__name__)
        raise ValueError(f"input {spec.name!r} must be a {np.dtype(spec.dtype)} array, got {got}")
    if images.ndim != len(spec.sample_shape) + 1 or images.shape[1:] != spec.sample_shape:
        raise ValueError(f"input {spec.name!r} must have shape [N, {', '.join(map(str, spec.sample_shape))}]"
                         f", got {list(images.shape)}")
    batch = images.shape[0]
    if not 1 <= batch <= max_batch:
        raise ValueError(f"batch of {batch} images is outside this engine's range 1..{max_batch}")
    return batch
