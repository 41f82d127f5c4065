"""Learning-rate schedule: linear warm-up, then cosine annealing from the peak to a floor."""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="training")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """0 -> ``peak`` over ``warmup_steps``, then cosine down to ``floor`` at ``total_steps``.

    The warm-up keeps the first steps of a from-scratch network (random BN statistics) from
    blowing up at the full rate; defaults follow DeepLab's 0.007 peak.
    """

    def __init__(self, total_steps: int, peak: float = 0.007, floor: float = 0.0001, warmup_steps: int = 0):
        if total_steps <= 0 or warmup_steps < 0 or warmup_steps >= total_steps:
            raise ValueError(f"need 0 <= warmup_steps < total_steps, got {warmup_steps}, {total_steps}")
        if not 0 <= floor <= peak:
            raise ValueError(f"need 0 <= floor <= peak, got floor={floor}, peak={peak}")
        self.total_steps, self.peak, self.floor, self.warmup_steps = total_steps, peak, floor, warmup_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.peak * (step + 1.0) / max(self.warmup_steps, 1)
        progress = ops.clip((step - self.warmup_steps) / (self.total_steps - self.warmup_steps), 0.0, 1.0)
        cosine = self.floor + 0.5 * (self.peak - self.floor) * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < self.warmup_steps, warm, cosine)

    def get_config(self):
        return {"total_steps": self.total_steps, "peak": self.peak, "floor": self.floor,
                "warmup_steps": self.warmup_steps}
