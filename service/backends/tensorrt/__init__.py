"""TensorRT at run time: load a plan that ``build_engine.py`` built, check it fits this GPU, serve it.

Pure logic (sidecar matching, buffer sizing, plan decisions) lives in modules that import neither
TensorRT nor CUDA, so it is tested on machines without a GPU; the modules that do (``cuda``,
``host``, ``backend``) import them lazily, inside functions. Build-time code is in ``engine_builder``.
"""
