"""Modified aligned Xception backbones for DeepLabv3+ (Chen et al. 2018,
https://arxiv.org/abs/1802.02611, section 3.2; Xception: Chollet 2017).

Changes from the original Xception, as in the paper: every max-pool is a
strided depthwise-separable conv (so it can become an atrous conv), BN + ReLU
follow every depthwise and pointwise conv, and the middle flow is deeper.
Xception-71 splits each entry-flow downsampling block into a stride-1 and a
stride-2 block. Depths follow DeepLab's model zoo (xception_41/65/71).
"""

from __future__ import annotations

from dataclasses import dataclass

from keras import layers

from training.model.backbones.base import AtrousSchedule, BackboneFeatures
from training.model.blocks import BlockSettings, block, conv_bn, separable_conv_bn

MIDDLE_FLOW_CHANNELS = 728
EXIT_FLOW = (((728, 1024, 1024), 2, "conv"), ((1536, 1536, 2048), 1, None))


@dataclass(frozen=True)
class XceptionSpec:
    entry_flow: tuple[tuple[int, int], ...]  # (channels, stride) per entry block
    middle_repeats: int


XCEPTION_SPECS = {
    41: XceptionSpec(((128, 2), (256, 2), (728, 2)), middle_repeats=8),
    65: XceptionSpec(((128, 2), (256, 2), (728, 2)), middle_repeats=16),
    71: XceptionSpec(((128, 2), (256, 1), (256, 2), (728, 1), (728, 2)), middle_repeats=16),
}


def _xception_module(channels, strides, dilation, shortcut, settings, name):
    """Three separable convs (the last may stride) plus an optional shortcut.

    shortcut: "conv" (1x1 conv + BN, for blocks that change shape), "identity",
    or None (the last exit-flow block has none).
    """

    def body(x):
        y = x
        for index, filters in enumerate(channels):
            last = index == len(channels) - 1
            y = separable_conv_bn(
                y,
                filters,
                settings,
                f"{name}_sep{index + 1}",
                strides=strides if last else 1,
                dilation=dilation,
            )
        if shortcut == "conv":
            x = conv_bn(x, channels[-1], 1, settings, f"{name}_shortcut", strides=strides, act=None)
        if shortcut is not None:
            y = layers.Add(name=f"{name}_add")([x, y])
        return y

    return body


def build_xception(inputs, *, output_stride: int, settings: BlockSettings, depth: int) -> BackboneFeatures:
    """Xception-`depth` (41, 65 or 71)."""
    spec = XCEPTION_SPECS[depth]
    schedule = AtrousSchedule(output_stride)
    stem_stride, _ = schedule.next_unit(2)

    def stem(x):
        x = conv_bn(x, 32, 3, settings, "stem1", strides=stem_stride)
        return conv_bn(x, 64, 3, settings, "stem2")

    x = block(inputs, stem, settings, "stem")

    def add_module(x, channels, stride, shortcut, name):
        strides, dilation = schedule.next_unit(stride)
        body = _xception_module(channels, strides, dilation, shortcut, settings, name)
        return schedule.record(block(x, body, settings, name))

    for index, (channels, stride) in enumerate(spec.entry_flow):
        x = add_module(x, (channels,) * 3, stride, "conv", f"entry_block{index + 1}")
    for index in range(spec.middle_repeats):
        x = add_module(x, (MIDDLE_FLOW_CHANNELS,) * 3, 1, "identity", f"middle_block{index + 1}")
    for index, (channels, stride, shortcut) in enumerate(EXIT_FLOW):
        x = add_module(x, channels, stride, shortcut, f"exit_block{index + 1}")
    return schedule.features(x)


def xception_builder(depth: int):
    """Registry entry for Xception-`depth`; it takes no backbone options."""

    def build(inputs, *, output_stride: int, settings: BlockSettings) -> BackboneFeatures:
        return build_xception(inputs, output_stride=output_stride, settings=settings, depth=depth)

    build.__name__ = f"build_xception{depth}"
    return build
