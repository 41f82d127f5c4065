"""The exported graph: uint8 NHWC RGB in, class probabilities and per-pixel labels out.

Normalising inside the graph means servers send 4x fewer bytes and every runtime (SavedModel,
ONNX, TFLite, TensorRT) agrees on preprocessing. The label output lets a server fetch only the
small uint8 map. ``tf.argmax`` is used on purpose: ``keras.ops.argmax`` lowers to a pattern with
BitwiseAnd, which TFLite lacks. The graph is a Keras ``ExportArchive`` rather than a bare
``tf.Module``: the archive tracks Keras 3 variables so that the TFLite converter can freeze them
(from a plain ``tf.Module`` it kept them as unreadable resource variables and produced NaNs).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from modelcard.card import INPUT_NAME, LABELS_NAME, PROBABILITIES_NAME

SIGNATURE = "serving_default"


def normalise(image):
    """uint8 [0, 255] -> float32 [-1, 1] (the card's ``x / 127.5 - 1``)."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


@dataclass(frozen=True)
class ExportGraph:
    """The archive (writes the SavedModel) and its endpoint as a ``tf.function`` (for tf2onnx)."""

    archive: keras.export.ExportArchive
    serve: tf.types.experimental.PolymorphicFunction


def build_export_graph(model: keras.Model, input_size: tuple[int, int]) -> ExportGraph:
    """One endpoint, ``serving_default``: ``image`` uint8 [None, H, W, 3] -> ``probabilities``
    float32 [None, H, W, C] (softmax) and ``labels`` uint8 [None, H, W]."""
    height, width = input_size

    def serve(image):
        logits = tf.cast(model(normalise(image), training=False), tf.float32)
        return {
            PROBABILITIES_NAME: tf.nn.softmax(logits, axis=-1),
            LABELS_NAME: tf.cast(tf.argmax(logits, axis=-1), tf.uint8),
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    endpoint = archive.add_endpoint(
        SIGNATURE, serve, input_signature=[tf.TensorSpec([None, height, width, 3], tf.uint8, name=INPUT_NAME)])
    return ExportGraph(archive, endpoint)


def keras_reference(model: keras.Model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, labels) straight from the Keras model with NumPy pre/post-processing:
    the independent reference every export is compared against."""
    logits = np.asarray(model(images.astype(np.float32) / 127.5 - 1.0, training=False), dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities = (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)
    return probabilities, logits.argmax(axis=-1).astype(np.uint8)
