"""The real images every export and engine is checked on: the first images of the model's
validation split, letterboxed to the model input exactly as the service feeds them."""

from __future__ import annotations

import numpy as np

from modelcard.geometry import letterbox

from .registry import get_dataset


def validation_images(recipe: dict, count: int, size: tuple[int, int], root: str | None = None) -> np.ndarray:
    """The first ``count`` images of the recipe's validation split, letterboxed to ``size``."""
    dataset = get_dataset(recipe["dataset"], root=root, split=recipe.get("val_split", "val"))
    return np.stack([letterbox(dataset.load_image(sample.image_path), size)[0] for sample in dataset.samples[:count]])
