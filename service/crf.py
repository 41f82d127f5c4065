"""Dense-CRF refinement of the model's probabilities (Krähenbühl & Koltun, NIPS 2011).

Runs on the letterboxed image's content (the padding is cropped off) at a fraction of the model's
resolution (`--crf.scale`), so its cost does not grow with the caller's image; the refined marginals
then take the place of the model's probabilities (their argmax is the refined label map), so CRF
combines with every output format. pydensecrf holds the GIL for the whole inference (measured: a
thread ticking every millisecond got 6 ticks during a 0.4 s CRF), so it runs in worker processes,
started from a fork server that has already imported numpy and pydensecrf.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image

from modelcard.geometry import resize_channels
from service.errors import ServiceError
from service.settings import CrfSettings

_MIN_PROBABILITY = 1e-8


def refine(image: np.ndarray, probabilities: np.ndarray, params: CrfSettings) -> np.ndarray:
    """Refined marginals float32 [H, W, C] (summing to 1 per pixel) from RGB uint8 [H, W, 3] and softmax
    float32 [H, W, C].

    At `params.scale` < 1 the CRF runs on the image and probabilities shrunk by that factor and its
    marginals are enlarged back bilinearly: the lattice's cost falls with the pixel count while
    boundaries stay smooth at full resolution.
    """
    import pydensecrf.densecrf as dcrf  # imported in the worker processes only

    height, width, classes = probabilities.shape
    if image.shape != (height, width, 3):
        raise ValueError(f"image {image.shape} does not match probabilities {probabilities.shape}")
    small = (max(1, round(height * params.scale)), max(1, round(width * params.scale)))
    if small != (height, width):
        image = np.asarray(Image.fromarray(image).resize(small[::-1], Image.Resampling.BILINEAR))
        probabilities = resize_channels(probabilities, small)
    unary = -np.log(np.clip(probabilities, _MIN_PROBABILITY, 1.0))
    crf = dcrf.DenseCRF2D(small[1], small[0], classes)
    # pydensecrf keeps pointers into these arrays: they must be writable, C-contiguous and ours.
    crf.setUnaryEnergy(np.ascontiguousarray(unary.reshape(-1, classes).T, dtype=np.float32).copy())
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy * params.scale, compat=params.gaussian_compat)
    crf.addPairwiseBilateral(
        sxy=params.bilateral_sxy * params.scale,
        srgb=params.bilateral_srgb,
        rgbim=np.ascontiguousarray(image, dtype=np.uint8).copy(),
        compat=params.bilateral_compat,
    )
    marginals = np.asarray(crf.inference(params.iterations), dtype=np.float32).reshape(classes, *small)
    marginals = np.ascontiguousarray(np.moveaxis(marginals, 0, -1))
    if small != (height, width):
        return resize_channels(marginals, (height, width))
    return marginals


class CrfPool:
    """A bounded pool of CRF worker processes shared by all requests."""

    def __init__(self, params: CrfSettings):
        self.params = params
        self._per_model: dict[str | None, CrfSettings] = {None: params}
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["numpy", "PIL.Image", "pydensecrf.densecrf", "service.crf"])
        self._executor = ProcessPoolExecutor(max_workers=params.workers, mp_context=context)
        self._pending = 0

    def params_for(self, model_preset: str | None) -> CrfSettings:
        """The parameters for a model whose card names `model_preset` (`CrfSettings.for_model`)."""
        if model_preset not in self._per_model:
            self._per_model[model_preset] = self.params.for_model(model_preset)
        return self._per_model[model_preset]

    async def refine(self, image: np.ndarray, probabilities: np.ndarray, model_preset: str | None = None) -> np.ndarray:
        """Refine off the event loop with the model's parameters (`params_for`); 503 when more than
        max_pending refinements are waiting."""
        if self._pending >= self.params.max_pending:
            raise ServiceError(
                503, "crf_busy",
                f"{self._pending} CRF refinements are already waiting (limit {self.params.max_pending})",
                {"Retry-After": "1"},
            )
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            params = self.params_for(model_preset)
            return await loop.run_in_executor(self._executor, refine, image, probabilities, params)
        finally:
            self._pending -= 1

    async def warm_up(self) -> None:
        """Start every worker process now rather than on the first request."""
        rng = np.random.default_rng(0)
        probabilities = rng.dirichlet([1.0, 1.0], size=(16, 16)).astype(np.float32)
        image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        await asyncio.gather(*(self.refine(image, probabilities) for _ in range(self.params.workers)))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
