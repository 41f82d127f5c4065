"""Appearance-shift transforms: exposure (gamma), white balance, blur, sensor noise, JPEG
artefacts, resolution loss and specular highlights. They change an image, never its mask.

A new camera, drive or endoscope changes how a scene LOOKS (tone curve, colour cast, sharpness,
noise, compression, reflections) far more than what is in it; the bundled models lose most of
their accuracy on such data (issue 13). Each transform here is a deterministic function of its
parameters, used twice:

- randomly, as training augmentation (``AppearanceConfig`` + ``random_appearance``; the colour
  part before the geometric warp, so letterbox padding stays mid-grey, the degradations after it,
  at the resolution the network sees: ``augment.augment`` calls both);
- with fixed, seeded parameters, as an appearance-shift validation set
  (``training.datasets.shifted``).

Images are float32 or uint8 HxWx3 in 0..255; every function returns float32 0..255.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter


def _float(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, np.float32)


def _uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(_float(image)), 0, 255).astype(np.uint8)


def adjust_gamma(image: np.ndarray, gamma: float) -> np.ndarray:
    """255 (x / 255) ** gamma: gamma < 1 brightens shadows (over-exposure), > 1 darkens."""
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    return 255.0 * np.power(np.clip(_float(image), 0, 255) / 255.0, gamma, dtype=np.float32)


def white_balance(image: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """Per-channel (R, G, B) gains: a colour cast, as a camera's white balance gives one."""
    gains = np.asarray(gains, np.float32)
    if gains.shape != (3,) or (gains <= 0).any():
        raise ValueError(f"white balance needs 3 positive gains, got {gains.tolist()}")
    return np.clip(_float(image) * gains, 0, 255)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Defocus or motion-free camera blur; sigma in pixels (0 = unchanged)."""
    if sigma <= 0:
        return _float(image)
    return _float(Image.fromarray(_uint8(image)).filter(ImageFilter.GaussianBlur(sigma)))


def add_noise(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian sensor noise, ``std`` in 0..255 grey levels, independent per pixel and channel."""
    noise = rng.standard_normal(np.shape(image), dtype=np.float32) * np.float32(std)
    return np.clip(_float(image) + noise, 0, 255)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode as JPEG at ``quality`` (1..95): blocking and ringing artefacts."""
    if not 1 <= quality <= 95:
        raise ValueError(f"JPEG quality must be in [1, 95], got {quality}")
    buffer = io.BytesIO()
    Image.fromarray(_uint8(image)).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return _float(Image.open(buffer).convert("RGB"))


def downscale_upscale(image: np.ndarray, factor: float) -> np.ndarray:
    """Lose resolution: shrink by ``factor`` (>= 1) and enlarge back (a smaller sensor or frame)."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    height, width = np.shape(image)[:2]
    small = (max(1, round(width / factor)), max(1, round(height / factor)))
    picture = Image.fromarray(_uint8(image)).resize(small, Image.Resampling.BILINEAR)
    return _float(picture.resize((width, height), Image.Resampling.BILINEAR))


def specular_highlights(image: np.ndarray, rng: np.random.Generator, count: int,
                        max_radius_fraction: float = 0.04) -> np.ndarray:
    """``count`` saturated, soft-edged white ellipses, as an endoscope's light reflected by wet
    mucosa gives them; radii up to ``max_radius_fraction`` of the shorter side."""
    image = _float(image).copy()
    height, width = image.shape[:2]
    rows, cols = np.mgrid[:height, :width].astype(np.float32)
    for _ in range(count):
        cy, cx = float(rng.uniform(0, height)), float(rng.uniform(0, width))
        ry, rx = (float(r) for r in rng.uniform(0.2, 1.0, 2) * max_radius_fraction * min(height, width) + 1.0)
        angle = float(rng.uniform(0, math.pi))
        cos, sin = math.cos(angle), math.sin(angle)
        u = ((cols - cx) * cos + (rows - cy) * sin) / rx
        v = (-(cols - cx) * sin + (rows - cy) * cos) / ry
        alpha = np.clip(1.5 - 1.5 * (u * u + v * v), 0, 1)[..., None]  # flat core, soft rim
        image = image * (1 - alpha) + 255.0 * alpha
    return image.astype(np.float32, copy=False)


@dataclass(frozen=True)
class AppearanceConfig:
    """Random appearance shift for training; every strength 0 (the default) turns its part off.

    gamma: log-uniform gamma in [exp(-gamma), exp(gamma)].
    white_balance: per-channel gains drawn from [1 - s, 1 + s].
    lowres, blur, noise, jpeg, specular: probabilities of applying each degradation, with
    lowres_factor (largest shrink factor), blur_sigma (max sigma, px), noise_std (max std, grey
    levels), jpeg_quality (lowest quality), specular_count (max number of highlights).
    """

    gamma: float = 0.0
    white_balance: float = 0.0
    lowres: float = 0.0
    lowres_factor: float = 3.0
    blur: float = 0.0
    blur_sigma: float = 1.5
    noise: float = 0.0
    noise_std: float = 8.0
    jpeg: float = 0.0
    jpeg_quality: int = 30
    specular: float = 0.0
    specular_count: int = 6

    def __post_init__(self) -> None:
        for name in ("lowres", "blur", "noise", "jpeg", "specular"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"appearance {name} is a probability in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.white_balance < 1:
            raise ValueError(f"appearance white_balance must be in [0, 1), got {self.white_balance}")
        if not 0 <= self.gamma <= 1.5:
            raise ValueError(f"appearance gamma must be in [0, 1.5], got {self.gamma}")
        if self.lowres_factor < 1:
            raise ValueError(f"appearance lowres_factor must be >= 1, got {self.lowres_factor}")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"appearance jpeg_quality must be in [1, 95], got {self.jpeg_quality}")

    @property
    def enabled(self) -> bool:
        return any((self.gamma, self.white_balance, self.lowres, self.blur, self.noise, self.jpeg, self.specular))


def random_colour(image: np.ndarray, rng: np.random.Generator, config: AppearanceConfig) -> np.ndarray:
    """The tone and colour part (gamma, white balance, highlights): before the geometric warp."""
    image = _float(image)
    if config.gamma:
        image = adjust_gamma(image, math.exp(rng.uniform(-config.gamma, config.gamma)))
    if config.white_balance:
        image = white_balance(image, tuple(rng.uniform(1 - config.white_balance, 1 + config.white_balance, 3)))
    if config.specular and rng.random() < config.specular:
        image = specular_highlights(image, rng, int(rng.integers(1, config.specular_count + 1)))
    return image


def random_degradation(image: np.ndarray, rng: np.random.Generator, config: AppearanceConfig) -> np.ndarray:
    """The camera part (resolution loss, blur, noise, JPEG), in that order: after the warp, at
    network resolution. A zero probability draws nothing, so older configs keep their random stream."""
    image = _float(image)
    if config.lowres and rng.random() < config.lowres:
        image = downscale_upscale(image, rng.uniform(1.0, config.lowres_factor))
    if config.blur and rng.random() < config.blur:
        image = gaussian_blur(image, rng.uniform(0.3, config.blur_sigma))
    if config.noise and rng.random() < config.noise:
        image = add_noise(image, rng.uniform(1.0, config.noise_std), rng)
    if config.jpeg and rng.random() < config.jpeg:
        image = jpeg(image, int(rng.integers(config.jpeg_quality, 96)))
    return image
