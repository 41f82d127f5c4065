"""Open an exported ONNX file in ONNX Runtime and run it on uint8 NHWC images.

The one place a session is built: the service's backend passes its tuned ``SessionOptions``,
the exporter, the quantizer, the engine builder and evaluation take the defaults. ``OnnxRunner``
returns ``(probabilities float32 [N,H,W,C], labels uint8 [N,H,W])`` by output name, so parity
checks and evaluation treat every runtime alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime

from modelcard.card import INPUT_NAME, LABELS_NAME, PROBABILITIES_NAME, ModelCard

CPU_PROVIDER = "CPUExecutionProvider"


def open_session(path: str | Path, options: onnxruntime.SessionOptions | None = None,
                 providers: list[str] | None = None, threads: int | None = None) -> onnxruntime.InferenceSession:
    """An inference session on ``path`` (FileNotFoundError names a missing file); ``threads`` sets
    the intra-op pool when ``options`` does not come from the caller."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    if options is None:
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=providers or [CPU_PROVIDER])


class OnnxRunner:
    """An exported ONNX graph in ONNX Runtime (CPU unless ``providers`` says otherwise), its tensors
    named by ``card`` (by the names exports write when there is no card yet)."""

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int | None = None,
                 card: ModelCard | None = None):
        self.session = open_session(path, providers=providers, threads=threads)
        if card is None:
            self._input, self._outputs = INPUT_NAME, [PROBABILITIES_NAME, LABELS_NAME]
        else:
            self._input, self._outputs = card.input.name, [card.outputs.probabilities.name, card.outputs.labels.name]
        inputs = {item.name: item for item in self.session.get_inputs()}
        outputs = {item.name for item in self.session.get_outputs()}
        if self._input not in inputs or not set(self._outputs) <= outputs:
            raise ValueError(f"{path}: expected input {self._input!r} and outputs {self._outputs}; "
                             f"found inputs {sorted(inputs)}, outputs {sorted(outputs)}")
        _, height, width, _ = inputs[self._input].shape
        if not (isinstance(height, int) and isinstance(width, int)):
            raise ValueError(f"{path}: input {self._input!r} needs a fixed height and width, got {height}x{width}")
        self.input_size = (height, width)

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities, labels = self.session.run(self._outputs, {self._input: images})
        return probabilities, labels
