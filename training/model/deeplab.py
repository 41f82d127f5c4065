"""DeepLabv3+ (Chen et al. 2018, "Encoder-Decoder with Atrous Separable
Convolution for Semantic Image Segmentation", https://arxiv.org/abs/1802.02611).

Input:  float32 [N, H, W, 3] in [-1, 1], H and W fixed by `input_size`.
Output: float32 logits [N, H, W, num_classes] (float32 even under mixed precision).

Weights do not depend on the input size or on `gradient_checkpointing`, so a
model trained at one crop size with checkpointing can be rebuilt at another
size without it and load the same weights (this is how export works).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras

from training.model.aspp import DEFAULT_RATES, aspp
from training.model.backbones import BACKBONES, get_backbone
from training.model.blocks import BlockSettings
from training.model.decoder import classify, refine_with_low_level

OUTPUT_STRIDES = tuple(sorted(DEFAULT_RATES))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_arguments(num_classes, backbone, input_size, output_stride, aspp_rates, dropout, bn_momentum):
    if not _is_int(num_classes) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; valid backbones: {', '.join(sorted(BACKBONES))}")
    if output_stride not in OUTPUT_STRIDES or not _is_int(output_stride):
        raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}")
    if (
        not isinstance(input_size, Sequence)
        or len(input_size) != 2
        or not all(_is_int(s) and s > 0 for s in input_size)
    ):
        raise ValueError(f"input_size must be (height, width) positive integers, got {input_size!r}")
    if any(s % output_stride for s in input_size):
        raise ValueError(
            f"input_size {tuple(input_size)} must be a multiple of output_stride {output_stride} "
            "in both dimensions"
        )
    if aspp_rates is not None and (
        isinstance(aspp_rates, (str, bytes))
        or not isinstance(aspp_rates, Sequence)
        or len(aspp_rates) != 3
        or not all(_is_int(r) and r > 0 for r in aspp_rates)
    ):
        raise ValueError(f"aspp_rates must be three positive integers (e.g. (6, 12, 18)), got {aspp_rates!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if not 0.0 < bn_momentum < 1.0:
        raise ValueError(f"bn_momentum must be in (0, 1), got {bn_momentum!r}")


def build_deeplab(
    num_classes: int,
    backbone: str = "mobilenetv2",
    input_size: tuple[int, int] = (512, 512),
    output_stride: int = 16,
    aspp_rates: Sequence[int] | None = None,
    backbone_options: Mapping[str, Any] | None = None,
    decoder: bool = True,
    dropout: float = 0.1,
    sync_batchnorm: bool = False,
    gradient_checkpointing: bool = False,
    bn_momentum: float = 0.9,
) -> keras.Model:
    """Build a DeepLabv3+ segmentation model.

    aspp_rates: three atrous rates; None means (6, 12, 18) at output stride 16
        and (12, 24, 36) at 8. (3, 6, 12) suits small objects.
    backbone_options: per-backbone options, e.g. {"alpha": 0.5} for mobilenetv2.
    decoder: False gives plain DeepLabv3 (classifier on the ASPP output).
    sync_batchnorm: batch statistics across replicas of a tf.distribute strategy.
    gradient_checkpointing: recompute backbone blocks in the backward pass.
    """
    _check_arguments(num_classes, backbone, input_size, output_stride, aspp_rates, dropout, bn_momentum)
    rates = tuple(aspp_rates) if aspp_rates is not None else DEFAULT_RATES[output_stride]
    settings = BlockSettings(
        bn_momentum=bn_momentum, sync_batchnorm=sync_batchnorm, recompute=gradient_checkpointing
    )
    height, width = input_size
    inputs = keras.Input(shape=(height, width, 3), name="image")
    features = get_backbone(
        backbone, inputs, output_stride=output_stride, settings=settings, options=backbone_options
    )
    head_settings = BlockSettings(bn_momentum=bn_momentum, sync_batchnorm=sync_batchnorm)
    x = aspp(features.high_level, rates, head_settings, dropout=dropout)
    if decoder:
        x = refine_with_low_level(x, features.low_level, head_settings)
    logits = classify(x, num_classes, (height, width))
    variant = "deeplabv3plus" if decoder else "deeplabv3"
    return keras.Model(inputs, logits, name=f"{variant}_{backbone}")
