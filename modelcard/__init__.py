"""The contract between training, the engine builder and the service.

A model is an ONNX file plus its model card. This package says what a card holds (``card``), how
an image is fitted into the model's input and the answer mapped back (``geometry``), how closely a
copy of a model must match its reference (``parity``), how an ONNX file is run (``onnx_runner``)
and where models and plans are found on disk (``files``). It imports neither TensorFlow nor the
training package, so the service and the builder depend on it and not on training.
"""
