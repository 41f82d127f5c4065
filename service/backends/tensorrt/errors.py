"""Errors a user of ``build_engine.py`` or the TensorRT backend can act on.

Each message says what is wrong and what to run; the CLI prints it without a traceback.
"""


class TensorRTError(RuntimeError):
    """Base class: anything here is a problem with the host, the files or the engine."""


class TensorRTNotInstalled(TensorRTError):
    pass


class CudaUnavailable(TensorRTError):
    """No usable GPU: no driver, no device visible, or cuda-python missing."""


class OnnxParseError(TensorRTError):
    """TensorRT's ONNX parser rejected the model; the message lists every parser error."""


class OutputNotWritable(TensorRTError):
    pass


class EngineMismatch(TensorRTError):
    """A plan built for another GPU, TensorRT version or ONNX file; engines are not portable."""


class SidecarError(TensorRTError):
    """A plan's sidecar JSON is missing or malformed; the message names the file and field."""


class ParityFailure(TensorRTError):
    """A converted model or a built engine disagrees with the FP32 ONNX model too often."""
