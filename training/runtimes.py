"""Run an exported model file on uint8 NHWC images: ONNX Runtime and the LiteRT interpreter.

Both runners return ``(probabilities float32 [N,H,W,C], labels uint8 [N,H,W])`` by output name,
so export parity checks and evaluation treat every runtime alike. No TensorFlow here: an ONNX
file can be evaluated with ONNX Runtime alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.model_card import INPUT_NAME, LABELS_NAME, PROBABILITIES_NAME


class OnnxRunner:
    """An exported ONNX graph in ONNX Runtime (CPU unless ``providers`` says otherwise)."""

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int | None = None):
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(path), options,
                                                    providers=providers or ["CPUExecutionProvider"])
        inputs = {item.name: item for item in self.session.get_inputs()}
        outputs = {item.name for item in self.session.get_outputs()}
        if INPUT_NAME not in inputs or not {PROBABILITIES_NAME, LABELS_NAME} <= outputs:
            raise ValueError(f"{path}: expected input {INPUT_NAME!r} and outputs {PROBABILITIES_NAME!r}, "
                             f"{LABELS_NAME!r}; found inputs {sorted(inputs)}, outputs {sorted(outputs)}")
        _, height, width, _ = inputs[INPUT_NAME].shape
        if not (isinstance(height, int) and isinstance(width, int)):
            raise ValueError(f"{path}: input {INPUT_NAME!r} needs a fixed height and width, got {height}x{width}")
        self.input_size = (height, width)

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities, labels = self.session.run([PROBABILITIES_NAME, LABELS_NAME], {INPUT_NAME: images})
        return probabilities, labels


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
