"""Run an exported TFLite file on uint8 NHWC images in the LiteRT interpreter.

Returns ``(probabilities float32 [N,H,W,C], labels uint8 [N,H,W])`` by output name, as
``modelcard.onnx_runner.OnnxRunner`` does, so the exporter's parity checks treat both alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelcard.card import INPUT_NAME, LABELS_NAME, PROBABILITIES_NAME


class TFLiteRunner:
    """A TFLite flatbuffer in the LiteRT interpreter, through its ``serving_default`` signature
    (which resizes the dynamic batch dimension itself)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"TFLite model not found: {path}")
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.runner = self.interpreter.get_signature_runner("serving_default")

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = self.runner(**{INPUT_NAME: images})
        return outputs[PROBABILITIES_NAME], outputs[LABELS_NAME]
