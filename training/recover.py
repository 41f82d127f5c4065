"""python -m training.recover --card engines/polyp.json --into checkpoints/polyp-recovered

A shipped model's ONNX weights back into a Keras checkpoint, so a machine without the original
run's `checkpoints/` (gitignored, so lost with the machine) can fine-tune it with `--init-weights`.

tf2onnx folded every batch norm into the convolution before it (kernel x gamma / sqrt(var + eps),
bias beta - mean x gamma / sqrt(var + eps)), or into a Mul + Add after a depthwise convolution. The
statistics are gone, so each batch norm comes back as that affine map: gamma = the scale (1 where
it is in the kernel), beta = the bias, moving mean 0, and a moving variance that undoes a
per-channel rescaling of the kernel to He-normal size (`kernel_scale`). In inference mode that is
the shipped function exactly, and the checkpoint is checked against the ONNX file on real images
(`modelcard.parity`) before it is written. In training mode a batch norm would
normalise by batch statistics these weights were never trained with, so the checkpoint records
`batchnorm: folded` and `training.train` fine-tunes it only with `--freeze-batchnorm`.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from modelcard import parity
from modelcard.card import ModelCard, load_card, sha256_file
from modelcard.onnx_runner import OnnxRunner
from training.checkpoint import FOLDED_BATCHNORM

# tf2onnx names a node after its Keras layer's TensorFlow scope, "<layer>_1/<op>...".
_LAYER_SCOPE = re.compile(r"(?:^|/)([A-Za-z0-9_]+?)_\d+/(?:convolution|depthwise|BiasAdd|Conv2D)")


@dataclass
class ConvWeights:
    """One Conv node of the ONNX graph: its kernel (ONNX layout) and the affine after it."""

    kernel: np.ndarray  # [out, in / groups, kh, kw]
    scale: np.ndarray | None  # per output channel, None where it is folded into the kernel
    bias: np.ndarray | None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.recover", description=__doc__.splitlines()[0])
    parser.add_argument("--card", type=Path, required=True, help="The model card whose ONNX file to recover.")
    parser.add_argument("--into", type=Path, required=True, help="The checkpoint directory to write.")
    parser.add_argument("--parity-images", type=int, default=parity.DEFAULT_IMAGES,
                        help="Validation images the recovered Keras model must match the ONNX file on.")
    return parser.parse_args(argv)


def conv_weights(model: onnx.ModelProto) -> dict[str, ConvWeights]:
    """Every Conv node's weights by Keras layer name, with the Mul/Add a folded batch norm left after it."""
    constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def constant_after(output: str, op_type: str) -> tuple[np.ndarray | None, str]:
        """The per-channel constant of the only consumer of `output` if it is `op_type`, and its output."""
        following = consumers.get(output, [])
        if len(following) != 1 or following[0].op_type != op_type:
            return None, output
        node = following[0]
        values = [constants[name] for name in node.input if name in constants]
        if len(values) != 1 or values[0].ndim != 4:
            return None, output
        return values[0].reshape(-1), node.output[0]

    found = {}
    for node in (node for node in model.graph.node if node.op_type == "Conv"):
        bias = constants[node.input[2]] if len(node.input) > 2 else None
        scale = None
        if bias is None:
            scale, after = constant_after(node.output[0], "Mul")
            bias, _ = constant_after(after, "Add")
        found[_layer_name(node, node.input[1])] = ConvWeights(constants[node.input[1]], scale, bias)
    return found


def _layer_name(node: onnx.NodeProto, kernel_name: str) -> str:
    for name in (kernel_name, *node.output):
        if match := _LAYER_SCOPE.search(name):
            return match.group(1)
    raise ValueError(f"cannot tell which Keras layer ONNX node {node.name!r} came from ({kernel_name}, {node.output})")


def _batch_norm_name(conv_layer: str) -> str:
    """training.model.blocks names a conv `<block>_conv` or `<block>_depthwise`, its BN `<block>_bn` / `_dw_bn`."""
    if conv_layer.endswith("_depthwise"):
        return conv_layer.removesuffix("_depthwise") + "_dw_bn"
    return conv_layer.removesuffix("_conv") + "_bn"


def load_onnx_weights(model, onnx_model: onnx.ModelProto) -> None:
    """Set every convolution, batch norm and the classifier of the Keras `model` from the ONNX graph;
    raises where a layer has no counterpart (a different architecture) or shapes disagree."""
    from keras import layers

    from training.model.blocks import all_layers

    convs = conv_weights(onnx_model)
    keras_layers = {layer.name: layer for layer in all_layers(model)}
    missing = []
    for name, layer in keras_layers.items():
        if not isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            continue
        weights = convs.pop(name, None)
        if weights is None:
            missing.append(name)
            continue
        depthwise = isinstance(layer, layers.DepthwiseConv2D)
        if depthwise:
            kernel = weights.kernel.transpose(2, 3, 0, 1)  # [C, 1, kh, kw] -> [kh, kw, C, 1]
        else:
            kernel = weights.kernel.transpose(2, 3, 1, 0)  # [out, in, kh, kw] -> [kh, kw, in, out]
        channels = weights.kernel.shape[0]
        scale = np.ones(channels, np.float32) if weights.scale is None else weights.scale
        bias = np.zeros(channels, np.float32) if weights.bias is None else weights.bias
        if layer.use_bias:  # the classifier: no batch norm follows
            layer.set_weights([kernel, bias])
            continue
        norm = keras_layers[_batch_norm_name(name)]
        size = kernel_scale(weights.kernel, norm.epsilon)
        layer.set_weights([kernel * (size[:, None] if depthwise else size)])  # depthwise: channels last but one
        norm.set_weights([scale, bias, np.zeros(channels, np.float32), (size**2 - norm.epsilon).astype(np.float32)])
    if missing or convs:
        raise ValueError(f"the ONNX graph and the Keras model differ: Keras layers without ONNX weights {missing}, "
                         f"ONNX convolutions without a Keras layer {sorted(convs)}")


def kernel_scale(kernel: np.ndarray, epsilon: float) -> np.ndarray:
    """Per output channel, the factor that brings a folded kernel back to He-normal size (std sqrt(2 / fan-in)).

    The frozen batch norm divides it back out (moving variance = factor^2 - epsilon), so the function is
    unchanged. Why: folding multiplied each channel by gamma / sqrt(var + eps), often far from 1, and Adam
    moves every weight by about the learning rate whatever its size: on a kernel 10x smaller than it was
    trained at, a fine-tune's steps are 10x larger than they were (measured: a 3e-5 fine-tune of the
    folded kernels lost val Dice in its first epochs).
    """
    fan_in = int(np.prod(kernel.shape[1:]))
    rms = np.sqrt(np.mean(np.square(kernel.reshape(kernel.shape[0], -1), dtype=np.float64), axis=1))
    factor = np.where(rms > 0, np.sqrt(2.0 / fan_in) / np.maximum(rms, 1e-30), 1.0)
    return np.maximum(factor, 2 * np.sqrt(epsilon)).astype(np.float32)


def recovered_config(card: ModelCard, command: str) -> dict:
    """The run config of the card's recipe, as `training.train` would have written it, with where it came from."""
    recipe = dict(card.training.recipe)
    recipe.pop("init_weights_sha256", None)
    recipe.update(run_name=card.name, init_weights=None, batchnorm=FOLDED_BATCHNORM,
                  recovered_from={"onnx": str(card.onnx_path), "sha256": sha256_file(card.onnx_path),
                                  "commands": [*card.training.reproduce.split(" && "), command]})
    return recipe


def recover(card: ModelCard, into: Path, parity_images: int, command: str) -> dict:
    """Write `into`/best.weights.h5 + config.json from the card's ONNX file; returns the parity with it."""
    from training.checkpoint import Checkpoint, load_model
    from training.datasets.parity_images import validation_images
    from training.inference_graph import keras_reference
    from training.model import build_deeplab

    config = recovered_config(card, command)
    architecture = card.architecture
    network = build_deeplab(card.num_classes, backbone=architecture.backbone,
                            input_size=tuple(card.input_size), output_stride=architecture.output_stride,
                            aspp_rates=architecture.aspp_rates, backbone_options=architecture.backbone_options,
                            decoder=architecture.decoder, dropout=config.get("dropout", 0.1))
    load_onnx_weights(network, onnx.load(str(card.onnx_path)))
    into.mkdir(parents=True, exist_ok=True)
    weights_path = into / "best.weights.h5"
    network.save_weights(weights_path)
    (into / "config.json").write_text(json.dumps(config, indent=2))

    checkpoint = Checkpoint(into, weights_path, config)
    model = load_model(checkpoint, card.input_size, architecture.inference_scale, architecture.test_time_flips)
    images = validation_images(config, parity_images, card.input_size, root=config.get("data_root"))
    result = parity.measure(keras_reference(model, images), OnnxRunner(card.onnx_path)(images))
    try:
        parity.check("recovered_keras", result)
    except Exception:
        weights_path.unlink()
        raise
    return result.as_dict()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    card = load_card(args.card, verify_files=True)
    command = shlex.join(["python", "-m", "training.recover", *(sys.argv[1:] if argv is None else argv)])
    started = time.monotonic()
    result = recover(card, args.into, args.parity_images, command)
    print(f"{args.into}: {card.name}'s weights from {card.onnx_path} in {time.monotonic() - started:.0f} s; "
          f"against ONNX: max abs prob diff {result['max_abs_prob_diff']:.2e}, "
          f"label agreement {result['label_agreement']:.5f} on {result['images']} images")


if __name__ == "__main__":
    main()
