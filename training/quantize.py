"""INT8 variant of an exported model: ONNX Runtime static quantization, recorded in its model card.

    python -m training.quantize --card engines/polyp.json [--calibration-images 64] [--keep-fp32 Softmax Resize]

QDQ format, int8 weights per output channel, uint8 activations (the pairing ONNX Runtime's x86 kernels run
fastest), ranges calibrated (MinMax) on training images letterboxed exactly as the service feeds them. The
weights keep to 7 bits (`reduce_range`): x86 CPUs without VNNI (AVX2 only: most AMD before Zen 4, Intel before
Cascade Lake) multiply uint8 x int8 pairs into int16 with saturation, and full 8-bit weights overflow it: measured
on an AVX2-only EPYC, full-range files lost 0.018 mIoU (camvid) and 0.025 Dice (polyp) that way
(docs/MODEL_CARD.md, "Why 7 bits"). `--full-range` keeps 8 bits, for hosts known to have VNNI. The
file is written next to the card as `<name>.int8.onnx`; the card gains `files.onnx_int8` (+ sha256), a
`quantization` section saying how it was made, and `export_parity.onnx_int8`: the INT8 file against the FP32
one on the validation images every export is checked on (labels must agree on >= 97 % of pixels).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from modelcard import parity
from modelcard.card import INT8_ROLE, ModelCard, load_card, sha256_file, validate_card, write_card
from modelcard.geometry import letterbox
from modelcard.onnx_runner import OnnxRunner
from training.datasets import get_dataset
from training.datasets.parity_images import validation_images

DEFAULT_CALIBRATION_IMAGES = 64
DEFAULT_KEEP_FP32: tuple[str, ...] = ()
INT8_SUFFIX = ".int8.onnx"


def calibration_images(card: ModelCard, count: int) -> np.ndarray:
    """`count` training images spread over the card's training split, letterboxed to the model input."""
    dataset = get_dataset(card.training.dataset, root=card.training.data_root, split=card.training.split)
    picks = np.linspace(0, len(dataset.samples) - 1, num=min(count, len(dataset.samples))).round().astype(int)
    return np.stack([letterbox(dataset.load_image(dataset.samples[index].image_path), card.input_size,
                               card.input.resize.pad_value, card.exposure_target_mean)[0]
                     for index in picks])


class _Batches:
    """onnxruntime.quantization.CalibrationDataReader over images, one per run."""

    def __init__(self, input_name: str, images: np.ndarray):
        self._feeds = iter([{input_name: image[None]} for image in images])

    def get_next(self) -> dict | None:
        return next(self._feeds, None)


def quantize(source: Path, target: Path, input_name: str, images: np.ndarray, keep_fp32: Sequence[str],
             full_range: bool = False) -> Path:
    """Write the static-quantized `source` to `target`; nodes of the op types in `keep_fp32` stay float, and the
    weights keep to 7 bits unless `full_range` (see the module docstring)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    excluded = [node.name for node in onnx.load(str(source)).graph.node if node.op_type in set(keep_fp32)]
    with tempfile.TemporaryDirectory(prefix="quantize-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(target), _Batches(input_name, images), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=excluded,
                        reduce_range=not full_range)
    return target


def add_int8_variant(card: ModelCard, calibration_count: int, keep_fp32: Sequence[str], command: str,
                     full_range: bool = False) -> ModelCard:
    """Quantize `card`'s ONNX file next to it, check it against the FP32 file, and return the card with it."""
    source = card.onnx_path
    target = source.with_name(source.name.removesuffix(".onnx") + INT8_SUFFIX)
    images = calibration_images(card, calibration_count)
    quantize(source, target, card.input.name, images, keep_fp32, full_range)
    check_images = validation_images(card.training.recipe, parity.DEFAULT_IMAGES, card.input_size,
                                     root=card.training.data_root)
    result = parity.measure(OnnxRunner(source, card=card)(check_images), OnnxRunner(target, card=card)(check_images))
    parity.check(INT8_ROLE, result)
    data = card.to_json()
    data["files"] = {**data["files"], INT8_ROLE: target.name, f"{INT8_ROLE}_sha256": sha256_file(target)}
    data["quantization"] = {INT8_ROLE: {
        "tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
        "weights": "int8, per channel" if full_range else "int8 in a 7-bit range (reduce_range), per channel",
        "activations": "uint8, per tensor", "calibration": "MinMax",
        "calibration_images": len(images), "calibration_split": card.training.split,
        "kept_fp32": sorted(keep_fp32), "parity_reference": "onnx", "command": command,
        "reduce_range": not full_range,
    }}
    data["export_parity"] = {**data["export_parity"], INT8_ROLE: result.as_dict()}
    return validate_card(data, str(card.path))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.quantize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--card", type=Path, required=True, help="model card of the FP32 ONNX file")
    parser.add_argument("--calibration-images", type=int, default=DEFAULT_CALIBRATION_IMAGES,
                        help="training images the activation ranges are calibrated on")
    parser.add_argument("--keep-fp32", nargs="*", default=list(DEFAULT_KEEP_FP32), metavar="OP_TYPE",
                        help="ONNX op types left unquantized (e.g. Softmax Resize)")
    parser.add_argument("--full-range", action="store_true",
                        help="8-bit weights: a little closer to FP32 on CPUs with VNNI, wrong by saturation on those "
                        "without (AVX2 only); the default keeps them to 7 bits, right on both")
    args = parser.parse_args(argv)
    if args.calibration_images < 1:
        parser.error("--calibration-images must be >= 1")
    return args


def quantize_command(card_path: Path, calibration_count: int, keep_fp32: Sequence[str], full_range: bool) -> str:
    words = ["python", "-m", "training.quantize", "--card", str(card_path)]
    words += ["--calibration-images", str(calibration_count)] if calibration_count != DEFAULT_CALIBRATION_IMAGES else []
    words += ["--keep-fp32", *keep_fp32] if list(keep_fp32) != list(DEFAULT_KEEP_FP32) else []
    words += ["--full-range"] if full_range else []
    return shlex.join(words)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        card = load_card(args.card, verify_files=True)
        command = quantize_command(args.card, args.calibration_images, args.keep_fp32, args.full_range)
        card = add_int8_variant(card, args.calibration_images, args.keep_fp32, command, args.full_range)
    except (parity.ParityError, ValueError, FileNotFoundError) as error:
        sys.exit(f"quantization failed: {error}")
    write_card(card, args.card)
    print(f"wrote {card.files.onnx_int8} and updated {args.card}: "
          f"label agreement with FP32 {card.export_parity[INT8_ROLE].label_agreement:.4f}")


if __name__ == "__main__":
    main()
