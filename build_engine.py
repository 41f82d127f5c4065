"""Build a TensorRT engine for an exported model on this GPU host.

    python build_engine.py engines/polyp.onnx [-o engines/polyp.plan] [--precision fp16|fp32]

See ``python build_engine.py --help`` and docs/TENSORRT.md; the logic is in engine_builder/.
"""

import sys

from engine_builder.cli import main

if __name__ == "__main__":
    sys.exit(main())
