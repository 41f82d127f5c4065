"""FP32 ONNX -> FP16 ONNX with FP32 inputs/outputs, checked against the FP32 model on real images.

TensorRT 11 removed weak typing (``BuilderFlag.FP16``): precision now comes from the graph, built
as a strongly typed network. NVIDIA's migration guide converts with ModelOpt AutoCast, which
pulls in PyTorch; ONNX Runtime's own converter handles this graph (including the uint8 -> float
Cast at its input) and ships with ONNX Runtime. Numerically sensitive ops stay in FP32.

    python build_engine.py fp16 engines/polyp.onnx [-o polyp.fp16.onnx] [--images DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import onnx

from engine_builder.checks import compare_labels, require_agreement, sample_images
from modelcard.card import ModelCardError, load_card
from modelcard.onnx_runner import OnnxRunner
from modelcard.parity import TOLERANCES, Parity
from service.backends.tensorrt.errors import TensorRTError

# exp/sum in Softmax, long accumulations in reductions and pooling, and variance in
# normalisation overflow or lose precision in FP16; everything else (convolutions) gains speed.
FP32_OPS = ("Softmax", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceL2", "GlobalAveragePool",
            "BatchNormalization", "InstanceNormalization", "LayerNormalization")


def convert_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """The converter appends its Cast nodes at the end of the graph; ONNX (and so TensorRT's
    parser) wants nodes in topological order, so the result is sorted again."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    converted = OnnxModel(convert_float_to_float16(model, keep_io_types=True,
                                                   op_block_list=sorted({*DEFAULT_OP_BLOCK_LIST, *FP32_OPS})))
    converted.topological_sort()
    return converted.model


def write_fp16_onnx(source: Path, destination: Path) -> Path:
    converted = convert_to_fp16(onnx.load(str(source)))
    onnx.save(converted, str(destination))
    return destination


def fp16_parity(fp32_path: Path, fp16_path: Path, images, batch_size: int = 4) -> Parity:
    """Label agreement of the FP16 graph with the FP32 graph in ONNX Runtime (CPU)."""
    return compare_labels(OnnxRunner(fp32_path), OnnxRunner(fp16_path), images, batch_size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python build_engine.py fp16", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("onnx", type=Path, help="FP32 ONNX exported by python -m training.export")
    parser.add_argument("-o", "--output", type=Path, help="default: <onnx stem>.fp16.onnx beside it")
    parser.add_argument("--images", type=Path, help="folder of images for the parity check "
                        "(default: the validation split named in the model card)")
    parser.add_argument("--parity-images", type=int, default=8, help="how many images to compare")
    args = parser.parse_args(argv)
    output = args.output or args.onnx.with_name(args.onnx.stem + ".fp16.onnx")
    try:
        card = load_card(args.onnx.with_suffix(".json"))
        images = sample_images(card.training.recipe, args.parity_images, card.input_size, args.images)
        write_fp16_onnx(args.onnx, output)
        parity = fp16_parity(args.onnx, output, images)
        print(f"{output}: labels agree with {args.onnx.name} on {parity.label_agreement:.4%} of pixels, "
              f"max |dp| {parity.max_abs_prob_diff:.2e}, {parity.images} images "
              f"(required {TOLERANCES['onnx_fp16'][1]:.1%})")
        require_agreement(parity, f"FP16 ONNX {output}", "onnx_fp16")
    except (ModelCardError, FileNotFoundError, TensorRTError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0

