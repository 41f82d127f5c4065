"""Write the inference graph (``training.inference_graph``) as SavedModel, ONNX and TFLite.

Every format comes from the same export graph (TFLite via the SavedModel written from it), so
all have one graph behind them: uint8 ``image`` in, ``probabilities`` + ``labels`` out, dynamic
batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from modelcard.card import INPUT_NAME, LABELS_NAME, PROBABILITIES_NAME
from training.inference_graph import SIGNATURE, ExportGraph

MIN_ONNX_OPSET = 17
BATCH_DIM_NAME = "batch"


def write_saved_model(graph: ExportGraph, directory: Path) -> Path:
    graph.archive.write_out(str(directory), verbose=False)
    return directory


class SavedModelRunner:
    """The written SavedModel, reloaded and run through its serving signature."""

    def __init__(self, directory: Path):
        self.signature = tf.saved_model.load(str(directory)).signatures[SIGNATURE]

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = self.signature(**{INPUT_NAME: tf.constant(images)})
        return outputs[PROBABILITIES_NAME].numpy(), outputs[LABELS_NAME].numpy()


def write_onnx(graph: ExportGraph, path: Path, opset: int = MIN_ONNX_OPSET) -> Path:
    """tf2onnx from the serving function with its explicit input signature; the batch dimension
    is named ``batch`` on the input and every output."""
    import onnx
    import tf2onnx

    if opset < MIN_ONNX_OPSET:
        raise ValueError(f"ONNX opset must be >= {MIN_ONNX_OPSET}, got {opset}")
    model_proto, _ = tf2onnx.convert.from_function(graph.serve, input_signature=graph.serve.input_signature,
                                                   opset=opset)
    for value in (*model_proto.graph.input, *model_proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM_NAME
    onnx.checker.check_model(model_proto)
    onnx.save(model_proto, str(path))
    return path


def write_tflite(saved_model_dir: Path, path: Path, float16: bool) -> Path:
    """TFLite from the SavedModel's serving signature (converting the concrete function directly
    drops the signature and with it the output names); ``float16`` stores fp16 weights (half the
    size; CPU kernels dequantise them, GPU delegates run in fp16)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[SIGNATURE])
    if float16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    path.write_bytes(converter.convert())
    return path
