"""`python -m tests.reliability.faulty_service [service flags]`: the real service with a fault in its engines.

Every backend is wrapped so that a batch holding a "poisoned" image (centre pixel POISON after
letterboxing) raises inside `Backend.infer`, as a failing engine would; all else is the real
backend. The patch is applied before `service.__main__` starts uvicorn in this process (one worker).
"""

from __future__ import annotations

import numpy as np

import service.registry
from service.__main__ import main as service_main
from service.backends import Backend
from service.backends.base import InferenceResult

POISON = (255, 0, 255)


class PoisonedBackend(Backend):
    """The real backend, except that a batch with a POISON-centred image raises."""

    def __init__(self, inner: Backend):
        self.inner = inner
        self.name, self.precision, self.max_batch_size = inner.name, inner.precision, inner.max_batch_size

    def infer(self, images: np.ndarray, want_probabilities: bool) -> InferenceResult:
        centres = images[:, images.shape[1] // 2, images.shape[2] // 2]
        if (centres == POISON).all(axis=-1).any():
            raise RuntimeError("injected fault: the engine failed on a poisoned image")
        return self.inner.infer(images, want_probabilities)

    def close(self) -> None:
        self.inner.close()


def main() -> None:
    load_backend = service.registry.load_backend
    service.registry.load_backend = lambda card, settings: PoisonedBackend(load_backend(card, settings))
    service_main()


if __name__ == "__main__":
    main()
