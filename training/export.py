"""Export a trained run: SavedModel, optionally ONNX (+ model card) and TFLite fp32/fp16.

    python -m training.export --checkpoint_path ./checkpoints/polyp --output_dir ./saved_model \
        --onnx --int8 --tflite --name polyp --engines-dir engines

The run's weights are loaded into a model rebuilt at ``--input-size`` (or, with
``--inference-scale``, at that size enlarged, between two resizes inside the graph; with
``--test-time-flips``, averaged over flipped views) and wrapped in the uint8 inference graph.
Every export is run on real validation images next to the Keras model and must match it
(``modelcard.parity``) or the export fails. With ``--onnx`` the model card is written
next to the ONNX file; ``--int8`` adds its INT8 variant (``training.quantize``); ``--engines-dir``
copies them where the service looks for models.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

from modelcard import parity
from modelcard.card import ModelCardError, load_card, sha256_file, write_card
from modelcard.geometry import DEFAULT_RESTORE
from modelcard.onnx_runner import OnnxRunner
from training.card_builder import build_card
from training.checkpoint import FLIP_AXES, Checkpoint, load_model, resolve_checkpoint
from training.datasets.parity_images import validation_images
from training.quantize import DEFAULT_CALIBRATION_IMAGES, DEFAULT_KEEP_FP32, add_int8_variant
from training.tflite_runner import TFLiteRunner

DEFAULT_INPUT_SIZE = 512
DEFAULT_PARITY_IMAGES = parity.DEFAULT_IMAGES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint_path", "--checkpoint-path", dest="checkpoint_path", type=Path, required=True,
                        help="run directory (best.weights.h5, else last.weights.h5) or a .weights.h5 file")
    parser.add_argument("--output_dir", "--output-dir", dest="output_dir", type=Path, default=Path("saved_model"),
                        help="SavedModel directory; ONNX, TFLite and the card are written into it too")
    parser.add_argument("--input-size", type=int, default=DEFAULT_INPUT_SIZE, help="square input side (pixels)")
    parser.add_argument("--inference-scale", type=float, default=1.0,
                        help="the graph enlarges its input by this factor before the network and shrinks "
                             "the result back: more compute, for a model that segments better at that scale")
    parser.add_argument("--test-time-flips", nargs="+", choices=sorted(FLIP_AXES), default=[],
                        help="the graph also runs the network on these flips of its input (every combination, "
                             "in one batch) and averages the probabilities: 2x or 4x the compute")
    parser.add_argument("--onnx", action="store_true", help="also write <name>.onnx and its model card")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    parser.add_argument("--tflite", action="store_true", help="also write <name>_fp32.tflite and <name>_fp16.tflite")
    parser.add_argument("--int8", action="store_true",
                        help="also write <name>.int8.onnx (static INT8, training.quantize) into the card "
                             "(needs --onnx)")
    parser.add_argument("--name", help="model name (file stem, card name); default: the run's name")
    parser.add_argument("--description", help="one line for the card; default: derived from the run config")
    parser.add_argument("--engines-dir", type=Path, help="copy <name>.onnx and <name>.json here (needs --onnx)")
    parser.add_argument("--metrics", type=Path,
                        help="training.evaluate JSON for the card; default: <run>/eval_val.json if present")
    parser.add_argument("--parity-images", type=int, default=DEFAULT_PARITY_IMAGES,
                        help="validation images each export is checked on")
    args = parser.parse_args(argv)
    if args.int8 and not args.onnx:
        parser.error("--int8 quantizes the ONNX file: add --onnx")
    if args.engines_dir and not args.onnx:
        parser.error("--engines-dir copies the ONNX file and its card: add --onnx")
    if not 64 <= args.input_size <= 2048:
        parser.error(f"--input-size must be in [64, 2048], got {args.input_size}")
    if args.parity_images < 1:
        parser.error("--parity-images must be >= 1")
    return args


def export_command(args: argparse.Namespace) -> str:
    words = ["python", "-m", "training.export", "--checkpoint_path", str(args.checkpoint_path),
             "--output_dir", str(args.output_dir), "--input-size", str(args.input_size)]
    words += ["--inference-scale", str(args.inference_scale)] if args.inference_scale != 1.0 else []
    words += ["--test-time-flips", *args.test_time_flips] if args.test_time_flips else []
    words += ["--onnx", "--opset", str(args.opset)] if args.onnx else []
    words += ["--tflite"] if args.tflite else []
    words += ["--int8"] if args.int8 else []
    words += ["--name", args.name] if args.name else []
    words += ["--description", args.description] if args.description else []
    words += ["--engines-dir", str(args.engines_dir)] if args.engines_dir else []
    words += ["--metrics", str(args.metrics)] if args.metrics else []
    if args.parity_images != DEFAULT_PARITY_IMAGES:
        words += ["--parity-images", str(args.parity_images)]
    return shlex.join(words)


def matching_metrics(path: Path, checkpoint: Checkpoint, input_size: int, inference_scale: float,
                     flips: list[str]) -> dict | None:
    """The evaluation JSON at ``path`` if it was computed on these weights, at this input size,
    inference scale and test-time flips (the graph that is being exported), with the run's exposure
    normalisation, restored to the original size by the rule the card will name."""
    if not path.is_file():
        print(f"note: no evaluation at {path}; the card's metrics stay null "
              "(run python -m training.evaluate first)", flush=True)
        return None
    metrics = json.loads(path.read_text())
    weights_sha256 = sha256_file(checkpoint.weights_path)
    if (metrics.get("weights_sha256") != weights_sha256 or metrics.get("input_size") != [input_size, input_size]
            or metrics.get("inference_scale", 1.0) != inference_scale
            or sorted(metrics.get("test_time_flips", [])) != sorted(flips)
            or metrics.get("restore", "probabilities-bilinear") != DEFAULT_RESTORE
            or metrics.get("exposure_target_mean") != checkpoint.config.get("exposure_target_mean")):
        print(f"warning: {path} was computed on other weights, another input size, inference scale, "
              "test-time flips, restore rule or exposure normalisation; the card's metrics stay null", flush=True)
        return None
    return metrics


def _relative(path: Path) -> str:
    """Paths in the card relative to the working directory when they are under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def export(args: argparse.Namespace) -> dict:
    """Write every requested format, check each against Keras; returns paths and parity numbers."""
    checkpoint = resolve_checkpoint(args.checkpoint_path)  # a bad path fails before TensorFlow loads

    from training.exporters import SavedModelRunner, write_onnx, write_saved_model, write_tflite
    from training.inference_graph import build_export_graph, keras_reference

    started = time.monotonic()

    def step(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    name = args.name or checkpoint.config.get("run_name") or checkpoint.run_dir.name
    size = (args.input_size, args.input_size)
    output_dir = args.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)

    step(f"loading {checkpoint.weights_path} into a {size[0]}x{size[1]} model "
         f"(inference scale {args.inference_scale}, test-time flips {args.test_time_flips or 'none'})")
    model = load_model(checkpoint, size, args.inference_scale, args.test_time_flips)
    images = validation_images(checkpoint.config, args.parity_images, size,
                                      root=checkpoint.config.get("data_root"))
    reference = keras_reference(model, images)
    graph = build_export_graph(model, size)
    results: dict[str, parity.Parity] = {}
    files: dict[str, Path] = {}

    def verify(kind: str, runner) -> None:
        results[kind] = parity.measure(reference, runner(images))
        step(f"{kind}: max abs prob diff {results[kind].max_abs_prob_diff:.2e}, "
             f"label agreement {results[kind].label_agreement:.5f} on {results[kind].images} images")
        parity.check(kind, results[kind])

    step(f"writing SavedModel to {output_dir}")
    write_saved_model(graph, output_dir)
    verify("saved_model", SavedModelRunner(output_dir))
    if args.onnx:
        files["onnx"] = output_dir / f"{name}.onnx"
        step(f"writing {files['onnx']} (opset {args.opset})")
        write_onnx(graph, files["onnx"], args.opset)
        verify("onnx", OnnxRunner(files["onnx"]))
    if args.tflite:
        for kind, float16 in (("tflite_fp32", False), ("tflite_fp16", True)):
            files[kind] = output_dir / f"{name}_{kind.removeprefix('tflite_')}.tflite"
            step(f"writing {files[kind]}")
            write_tflite(output_dir, files[kind], float16=float16)
            verify(kind, TFLiteRunner(files[kind]))

    summary = {"name": name, "saved_model": str(output_dir), "files": {k: str(v) for k, v in files.items()},
               "export_parity": {kind: result.as_dict() for kind, result in results.items()}}
    if args.onnx:
        config = checkpoint.config
        metrics = matching_metrics(args.metrics or checkpoint.run_dir / "eval_val.json", checkpoint, args.input_size,
                                   args.inference_scale, args.test_time_flips)
        description = args.description or (f"DeepLabv3+ ({config['backbone']}) for {config['dataset']}: "
                                            + ", ".join(config["classes"]))
        evaluate = [metrics["command"]] if metrics and metrics.get("command") else []
        reproduce = " && ".join([*checkpoint.training_commands, *evaluate, export_command(args)])
        card = build_card(name=name, description=description, config=config, input_size=size, files=files,
                          parity=summary["export_parity"], metrics=metrics,
                          checkpoint_path=Path(_relative(checkpoint.weights_path)), reproduce=reproduce,
                          inference_scale=args.inference_scale, test_time_flips=args.test_time_flips)
        card_path = write_card(card, output_dir / f"{name}.json")
        if args.int8:
            step("quantizing the ONNX file to INT8 (calibrated on training images)")
            write_card(add_int8_variant(load_card(card_path), DEFAULT_CALIBRATION_IMAGES, DEFAULT_KEEP_FP32,
                                        export_command(args)), card_path)
            card = load_card(card_path)
            files["onnx_int8"] = card.onnx_file("int8")
            summary["files"]["onnx_int8"] = str(files["onnx_int8"])
            summary["export_parity"]["onnx_int8"] = card.export_parity["onnx_int8"].model_dump()
            step(f"{files['onnx_int8'].name}: label agreement with FP32 "
                 f"{card.export_parity['onnx_int8'].label_agreement:.5f}")
        summary["card"] = str(card_path)
        step(f"wrote model card {card_path}")
        if args.engines_dir:
            args.engines_dir.mkdir(parents=True, exist_ok=True)
            for source in (*(files[role] for role in ("onnx", "onnx_int8") if role in files), card_path):
                shutil.copy2(source, args.engines_dir / source.name)
            step(f"copied {files['onnx'].name} and {card_path.name} to {args.engines_dir}")
    return summary


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        summary = export(args)
    except (parity.ParityError, ModelCardError, FileNotFoundError, ValueError) as error:
        sys.exit(f"export failed: {error}")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
