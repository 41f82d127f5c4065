"""DeepLabv3+ decoder (Chen et al. 2018, https://arxiv.org/abs/1802.02611, section 3.1)."""

from __future__ import annotations

from keras import layers

from training.model.blocks import BlockSettings, conv_bn, separable_conv_bn

LOW_LEVEL_FILTERS = 48
DECODER_FILTERS = 256


def refine_with_low_level(high, low_level, settings: BlockSettings):
    """Fuse ASPP output [N, H/os, W/os, C] with stride-4 features -> [N, H/4, W/4, 256].

    The low-level features are reduced to 48 channels so they do not outweigh
    the semantic ones; the ASPP output is bilinearly upsampled to stride 4 (4x at
    output stride 16); two 3x3 separable convs refine the concatenation.
    """
    low = conv_bn(low_level, LOW_LEVEL_FILTERS, 1, settings, "decoder_low_level")
    high = layers.Resizing(
        low.shape[1], low.shape[2], interpolation="bilinear", name="decoder_upsample"
    )(high)
    x = layers.Concatenate(name="decoder_concat")([high, low])
    x = separable_conv_bn(x, DECODER_FILTERS, settings, "decoder_sep1")
    return separable_conv_bn(x, DECODER_FILTERS, settings, "decoder_sep2")


def classify(x, num_classes: int, output_size: tuple[int, int]):
    """1x1 classifier, bilinear upsampling to the input size, float32 logits.

    The final cast keeps logits float32 under a mixed_float16 policy, so the
    loss and softmax stay numerically safe.
    """
    x = layers.Conv2D(num_classes, 1, name="classifier")(x)
    x = layers.Resizing(*output_size, interpolation="bilinear", name="upsample_to_input")(x)
    return layers.Activation("linear", dtype="float32", name="logits")(x)
