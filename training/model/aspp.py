"""Atrous Spatial Pyramid Pooling (DeepLabv3, Chen et al. 2017,
https://arxiv.org/abs/1706.05587), with separable atrous branches as in
DeepLabv3+ (https://arxiv.org/abs/1802.02611)."""

from __future__ import annotations

from keras import layers

from training.model.blocks import BlockSettings, conv_bn, separable_conv_bn

ASPP_FILTERS = 256
DEFAULT_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}
SMALL_OBJECT_RATES = (3, 6, 12)


def aspp(x, rates, settings: BlockSettings, *, dropout: float, filters: int = ASPP_FILTERS):
    """[N, h, w, C] -> [N, h, w, filters].

    Branches: 1x1 conv, one 3x3 atrous separable conv per rate, and image-level
    pooling (global average -> 1x1 conv -> bilinear resize back); concatenated,
    projected by a 1x1 conv, then dropout.
    """
    height, width = x.shape[1], x.shape[2]
    branches = [conv_bn(x, filters, 1, settings, "aspp_1x1")]
    for rate in rates:
        branches.append(separable_conv_bn(x, filters, settings, f"aspp_rate{rate}", dilation=rate))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="aspp_image_pool")(x)
    pooled = conv_bn(pooled, filters, 1, settings, "aspp_image_pool_1x1")
    branches.append(
        layers.Resizing(height, width, interpolation="bilinear", name="aspp_image_pool_resize")(pooled)
    )
    y = layers.Concatenate(name="aspp_concat")(branches)
    y = conv_bn(y, filters, 1, settings, "aspp_projection")
    return layers.Dropout(dropout, name="aspp_dropout")(y)
