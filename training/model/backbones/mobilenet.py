"""MobileNetV2 backbone (Sandler et al. 2018, https://arxiv.org/abs/1801.04381).

Written here rather than taken from `keras.applications` because no ImageNet
weights can be downloaded anyway and DeepLab needs atrous control of the last
stages. As in DeepLab, the final 1x1 conv to 1280 channels is dropped: ASPP
reads the 320-channel (times alpha) output directly.
"""

from __future__ import annotations

from keras import layers

from training.model.backbones.base import AtrousSchedule, BackboneFeatures
from training.model.blocks import BlockSettings, block, conv_bn, depthwise_bn

# (expansion t, output channels c, repeats n, first stride s), table 2 of the paper.
INVERTED_RESIDUAL_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled channel count as the reference implementation does."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _inverted_residual(expansion, filters, strides, dilation, settings, name):
    def body(x):
        in_channels = x.shape[-1]
        y = x
        if expansion != 1:
            y = conv_bn(y, in_channels * expansion, 1, settings, f"{name}_expand", act="relu6")
        y = depthwise_bn(y, settings, name, strides=strides, dilation=dilation, act="relu6")
        y = conv_bn(y, filters, 1, settings, f"{name}_project", act=None)
        if strides == 1 and in_channels == filters:
            y = layers.Add(name=f"{name}_add")([x, y])
        return y

    return body


def build_mobilenetv2(
    inputs,
    *,
    output_stride: int,
    settings: BlockSettings,
    alpha: float = 1.0,
) -> BackboneFeatures:
    """MobileNetV2 with width multiplier `alpha` (> 0)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise ValueError(f"backbone_options.alpha must be a positive number, got {alpha!r}")
    schedule = AtrousSchedule(output_stride)

    stem_stride, _ = schedule.next_unit(2)
    stem_channels = make_divisible(STEM_CHANNELS * alpha)
    x = block(
        inputs,
        lambda t: conv_bn(t, stem_channels, 3, settings, "stem", strides=stem_stride, act="relu6"),
        settings,
        "stem",
    )
    unit = 0
    for expansion, channels, repeats, first_stride in INVERTED_RESIDUAL_STAGES:
        filters = make_divisible(channels * alpha)
        for i in range(repeats):
            strides, dilation = schedule.next_unit(first_stride if i == 0 else 1)
            name = f"inverted_residual_{unit}"
            body = _inverted_residual(expansion, filters, strides, dilation, settings, name)
            x = schedule.record(block(x, body, settings, name))
            unit += 1
    return schedule.features(x)
