"""What every backbone returns, and the stride-to-atrous-rate rule they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOW_LEVEL_STRIDE = 4


@dataclass(frozen=True)
class BackboneFeatures:
    """Feature maps a DeepLabv3+ head consumes.

    low_level:  [N, H/4, W/4, C_low]   fine detail for the decoder
    high_level: [N, H/os, W/os, C_high] semantic features for ASPP
    """

    low_level: Any
    high_level: Any


class AtrousSchedule:
    """Turns requested strides into (stride, dilation) pairs for an output stride.

    Follows DeepLab's rule (`stack_blocks_dense`): once the feature map has
    reached `output_stride`, a unit that would downsample keeps stride 1, runs
    at the current atrous rate, and multiplies the rate by its stride for all
    later units. It also remembers the last feature seen at stride 4, which is
    the decoder's low-level input.
    """

    def __init__(self, output_stride: int):
        self.output_stride = output_stride
        self.current_stride = 1
        self.rate = 1
        self.low_level = None

    def next_unit(self, stride: int) -> tuple[int, int]:
        """Return (stride, dilation) for a unit that asks for `stride`."""
        if self.current_stride >= self.output_stride:
            dilation = self.rate
            self.rate *= stride
            return 1, dilation
        self.current_stride *= stride
        return stride, self.rate

    def record(self, x):
        """Note a unit's output; keep it if it is at the low-level stride."""
        if self.current_stride == LOW_LEVEL_STRIDE:
            self.low_level = x
        return x

    def features(self, x) -> BackboneFeatures:
        if self.low_level is None:
            raise RuntimeError("backbone never produced a stride-4 feature map")
        return BackboneFeatures(low_level=self.low_level, high_level=x)
