"""Build time: ONNX -> TensorRT plan (FP16 through a strongly typed FP16 ONNX), checked against
ONNX Runtime on real images before it is published. ``build_engine.py`` is the entry point (``cli``).

Depends on ``modelcard`` and on the run-time TensorRT code in ``service.backends.tensorrt`` (the
same runner serves and checks a plan); nothing at serving time imports this package.
"""
