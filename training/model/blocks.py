"""Layer building blocks shared by the backbones, ASPP and decoder.

Every convolution is followed by batch norm (and usually an activation), so the
helpers here take one `BlockSettings` that says how batch norm behaves and
whether backbone blocks are recomputed in the backward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers


@dataclass(frozen=True)
class BlockSettings:
    """How the normalisation and memory trade-offs of a model are configured."""

    bn_momentum: float = 0.9
    sync_batchnorm: bool = False
    recompute: bool = False

    def batch_norm(self, name: str) -> layers.BatchNormalization:
        # Keras only implements synchronized BN on TensorFlow (it raises on
        # other backends). Under JAX, data-parallel training shards one jitted
        # batch, so the batch statistics are already global.
        synchronized = self.sync_batchnorm and keras.backend.backend() == "tensorflow"
        return layers.BatchNormalization(
            momentum=self.bn_momentum, synchronized=synchronized, name=name
        )


def activation(kind: str | None, name: str) -> layers.Layer | None:
    """ReLU or ReLU6 (MobileNetV2); both map to one op in ONNX and TFLite."""
    if kind is None:
        return None
    if kind == "relu":
        return layers.ReLU(name=name)
    if kind == "relu6":
        return layers.ReLU(max_value=6.0, name=name)
    raise ValueError(f"unknown activation {kind!r}; expected 'relu', 'relu6' or None")


def _norm_act(x, settings: BlockSettings, act: str | None, name: str):
    x = settings.batch_norm(f"{name}_bn")(x)
    act_layer = activation(act, f"{name}_{act}")
    return act_layer(x) if act_layer is not None else x


def conv_bn(
    x,
    filters: int,
    kernel_size: int,
    settings: BlockSettings,
    name: str,
    *,
    strides: int = 1,
    dilation: int = 1,
    act: str | None = "relu",
):
    """Conv (no bias, BN follows) -> BN -> activation."""
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        dilation_rate=dilation,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    return _norm_act(x, settings, act, name)


def depthwise_bn(
    x,
    settings: BlockSettings,
    name: str,
    *,
    strides: int = 1,
    dilation: int = 1,
    act: str | None = "relu",
):
    """3x3 depthwise conv -> BN -> activation."""
    x = layers.DepthwiseConv2D(
        3,
        strides=strides,
        dilation_rate=dilation,
        padding="same",
        use_bias=False,
        depthwise_initializer="he_normal",
        name=f"{name}_depthwise",
    )(x)
    return _norm_act(x, settings, act, name + "_dw")


def separable_conv_bn(
    x,
    filters: int,
    settings: BlockSettings,
    name: str,
    *,
    strides: int = 1,
    dilation: int = 1,
    act: str | None = "relu",
):
    """Depthwise-separable 3x3 conv with BN + ReLU after the depthwise *and* the
    pointwise step, as in DeepLabv3+ (Chen et al. 2018, section 3.2)."""
    x = depthwise_bn(x, settings, name, strides=strides, dilation=dilation, act="relu")
    return conv_bn(x, filters, 1, settings, f"{name}_pointwise", act=act)


@keras.saving.register_keras_serializable(package="deeplab")
class RecomputableBlock(layers.Layer):
    """Runs a functional sub-model, optionally recomputing it in the backward pass.

    `keras.RematScope` cannot be used here: on the TensorFlow backend its
    `tf.recompute_grad` rejects the `training` keyword inside `tf.function`, and
    recomputing a batch-norm layer would apply its moving-statistics update a
    second time. So the block runs as a pure function of its weights
    (`stateless_call`) under `keras.remat`, and the batch-norm updates it
    returns are assigned once, outside the recomputed region. This works the
    same on the TensorFlow and JAX backends. The layer structure (and so the
    saved weights) does not depend on `recompute`.
    """

    def __init__(self, block: keras.Model, recompute: bool = False, **kwargs):
        # autocast=False: the weights must reach `stateless_call` in their
        # storage dtype; the block's own layers autocast under mixed precision.
        super().__init__(autocast=False, **kwargs)
        self.block = block
        self.recompute = recompute

    def call(self, inputs, training=None):
        if not (self.recompute and training):
            return self.block(inputs, training=training)
        frozen = [keras.ops.convert_to_tensor(v.value) for v in self.block.non_trainable_variables]

        def forward(x, *trainable):
            return self.block.stateless_call(list(trainable), frozen, x, training=True)

        trainable = [keras.ops.convert_to_tensor(v.value) for v in self.block.trainable_variables]
        outputs, updates = keras.remat(forward)(inputs, *trainable)
        for variable, value in zip(self.block.non_trainable_variables, updates):
            variable.assign(value)
        return outputs

    def compute_output_spec(self, inputs, training=None):
        return self.block.compute_output_spec(inputs)

    def get_config(self):
        return {
            **super().get_config(),
            "block": keras.saving.serialize_keras_object(self.block),
            "recompute": self.recompute,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["block"] = keras.saving.deserialize_keras_object(config["block"])
        return cls(**config)


def block(
    x,
    body: Callable,
    settings: BlockSettings,
    name: str,
):
    """Build `body` as one named sub-model and apply it to `x`.

    Backbone blocks are the unit of gradient checkpointing: with
    `settings.recompute` their activations are dropped after the forward pass
    and recomputed during backprop.
    """
    inputs = keras.Input(shape=x.shape[1:], dtype=x.dtype, name=f"{name}_input")
    sub_model = keras.Model(inputs, body(inputs), name=f"{name}_body")
    return RecomputableBlock(sub_model, recompute=settings.recompute, name=name)(x)


def all_layers(model: keras.Model):
    """Every leaf layer of `model`, inside nested sub-models and `RecomputableBlock`s too."""
    for layer in model.layers:
        inner = layer.block if isinstance(layer, RecomputableBlock) else layer
        if isinstance(inner, keras.Model):
            yield from all_layers(inner)
        else:
            yield layer


def freeze_batchnorm(model: keras.Model) -> None:
    """Every batch norm runs in inference mode and keeps its weights (Keras 3: a non-trainable
    BatchNormalization uses its moving statistics even in training)."""
    for layer in all_layers(model):
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
