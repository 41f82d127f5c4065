"""Evaluate a model at the ORIGINAL image resolution: mIoU, per-class IoU, Dice, pixel accuracy.

    python -m training.evaluate --checkpoint_path checkpoints/polyp [--input-size 512] [--inference-scale 1.25]
        [--test-time-flips horizontal vertical]
    python -m training.evaluate --onnx engines/polyp.onnx [--card engines/polyp.json]
        [--split val] [--limit N] [--output out.json]

Each image goes the service's way (``modelcard.geometry``): letterboxed into the model input
(aspect ratio kept, the card's padding and exposure normalisation), and the answer cropped back
and restored to the original image size by the card's restore rule (``--restore`` overrides it; a
checkpoint uses the export's default), then compared with the original-resolution mask. Ignored
pixels (255 in loaded masks, e.g. CamVid's void) are left out.

A checkpoint runs through the same uint8 inference graph that is exported, so it and its ONNX
export score the same; by default it is evaluated at the export size (512) and the JSON goes to
``<run>/eval_<split>.json``, where ``python -m training.export`` picks it up for the model card.
``--inference-scale`` evaluates the graph that ``training.export --inference-scale`` would write
(the network runs on the input enlarged by that factor; see ``training.checkpoint.load_model``), and
``--test-time-flips`` the graph that averages over flipped views, as ``training.export`` would write it.
The ONNX path runs in ONNX Runtime (the model needs no TensorFlow).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import numpy as np

from modelcard.card import load_card, sha256_file
from modelcard.geometry import DEFAULT_RESTORE, PAD_VALUE, RestoreMode, crop, letterbox, restore
from training.checkpoint import FLIP_AXES
from training.datasets import IGNORE_INDEX, SegmentationDataset, get_dataset

Runner = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""uint8 [N, H, W, 3] -> (probabilities float32 [N, H, W, C], labels uint8 [N, H, W])."""

DEFAULT_INPUT_SIZE = 512


@dataclass
class Target:
    """What is evaluated: a runner, its input size, where its data lives, and its provenance."""

    runner: Runner
    input_size: tuple[int, int]
    dataset: str
    data_root: str | None
    source: dict
    run_dir: Path | None = None  # a checkpoint's run directory: the default home of its JSON
    inference_scale: float = 1.0
    test_time_flips: list[str] = field(default_factory=list)
    restore: RestoreMode = DEFAULT_RESTORE
    pad_value: int = PAD_VALUE
    exposure_target_mean: float | None = None  # the card's input.exposure (a run's normalise_exposure)


def predict_labels(target: Target, image: np.ndarray) -> np.ndarray:
    """uint8 HxW class ids for a uint8 HxWx3 image, at the image's own resolution, as served."""
    batch, placement = letterbox(image, target.input_size, target.pad_value, target.exposure_target_mean)
    probabilities, labels = target.runner(batch[None])
    return restore(target.restore, image.shape[:2], crop(labels[0], placement), crop(probabilities[0], placement))[0]


def evaluate(target: Target, dataset: SegmentationDataset, limit: int | None = None,
             progress: bool = True) -> dict:
    """Scores over the first ``limit`` samples (all when None) of ``dataset``."""
    from tqdm import tqdm

    from training.metrics import confusion_matrix, summarize

    samples = dataset.samples[:limit] if limit else dataset.samples
    confusion = np.zeros((dataset.num_classes, dataset.num_classes), dtype=np.int64)
    for sample in tqdm(samples, desc=f"evaluating {dataset.name}/{dataset.split}", unit="img", disable=not progress):
        image, mask = dataset.load_sample(sample)
        predicted = predict_labels(target, image)
        if predicted.max(initial=0) >= dataset.num_classes:
            raise ValueError(f"model predicts class {predicted.max()} but {dataset.name} has "
                             f"{dataset.num_classes} classes")
        confusion += confusion_matrix(mask, predicted, dataset.num_classes, ignore_index=IGNORE_INDEX)
    return {
        "split": dataset.split,
        "dataset": dataset.name,
        "images": len(samples),
        "input_size": list(target.input_size),
        "inference_scale": target.inference_scale,
        "test_time_flips": sorted(target.test_time_flips),
        "resize": "letterbox",
        "pad_value": target.pad_value,
        "exposure_target_mean": target.exposure_target_mean,
        "restore": target.restore,
        "resolution": "original",
        "classes": list(dataset.classes),
        **target.source,
        **summarize(confusion, dataset.classes),
    }


def checkpoint_target(path: Path, input_size: int, inference_scale: float = 1.0,
                      test_time_flips: Sequence[str] = ()) -> Target:
    """A training run, through the export graph (TensorFlow)."""
    import tensorflow as tf

    from modelcard.card import LABELS_NAME, PROBABILITIES_NAME
    from training.checkpoint import load_model, resolve_checkpoint
    from training.inference_graph import build_export_graph

    checkpoint = resolve_checkpoint(path)
    size = (input_size, input_size)
    graph = build_export_graph(load_model(checkpoint, size, inference_scale, test_time_flips), size)

    def run(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = graph.serve(tf.constant(images))
        return outputs[PROBABILITIES_NAME].numpy(), outputs[LABELS_NAME].numpy()

    return Target(run, size, checkpoint.config["dataset"], checkpoint.config.get("data_root"),
                  {"source": {"kind": "checkpoint", "path": str(checkpoint.weights_path)},
                   "weights_sha256": sha256_file(checkpoint.weights_path)},
                  run_dir=checkpoint.run_dir, inference_scale=inference_scale,
                  test_time_flips=list(test_time_flips),
                  exposure_target_mean=checkpoint.config.get("exposure_target_mean"))


def onnx_target(path: Path, card_path: Path | None) -> Target:
    """An exported ONNX file in ONNX Runtime; dataset from its card (given, or ``<stem>.json``)."""
    from modelcard.onnx_runner import OnnxRunner

    card_path = card_path or (path.with_suffix(".json") if path.with_suffix(".json").is_file() else None)
    card = load_card(card_path) if card_path is not None else None
    runner = OnnxRunner(path, card=card)
    target = Target(runner, runner.input_size, None, None,
                    {"source": {"kind": "onnx", "path": str(path), "sha256": sha256_file(path),
                                "card": str(card_path) if card_path else None}})
    if card is not None:
        if card.input_size != runner.input_size:
            raise ValueError(f"{card_path}: input size {card.input_size} differs from {path}'s {runner.input_size}")
        target.dataset, target.data_root = card.training.dataset, card.training.data_root
        target.inference_scale = card.architecture.inference_scale
        target.test_time_flips = card.architecture.test_time_flips
        target.restore, target.pad_value = card.outputs.restore, card.input.resize.pad_value
        target.exposure_target_mean = card.exposure_target_mean
    return target


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint_path", "--checkpoint-path", dest="checkpoint_path", type=Path,
                       help="run directory (best, else last weights) or a .weights.h5 file")
    model.add_argument("--onnx", type=Path, help="exported ONNX file")
    parser.add_argument("--card", type=Path, help="model card of --onnx (default: <onnx stem>.json if present)")
    parser.add_argument("--input-size", type=int, default=DEFAULT_INPUT_SIZE,
                        help="checkpoint only: square model input side (default: the export size, 512)")
    parser.add_argument("--inference-scale", type=float, default=1.0,
                        help="checkpoint only: run the network on the input enlarged by this factor "
                             "(as training.export --inference-scale does inside the graph)")
    parser.add_argument("--test-time-flips", nargs="+", choices=sorted(FLIP_AXES), default=[],
                        help="checkpoint only: average over these flips of the input (every combination), "
                             "as training.export --test-time-flips does inside the graph")
    parser.add_argument("--restore", choices=get_args(RestoreMode),
                        help="how the answer goes back to the image's size (default: the card's rule; "
                             f"for a checkpoint {DEFAULT_RESTORE}, what the export writes into the card)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--dataset", help="dataset name (default: from the run config or the card)")
    parser.add_argument("--data-root", help="dataset folder (default: from the run config or the card)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images")
    parser.add_argument("--output", type=Path,
                        help="JSON to write (default for a checkpoint: <run>/eval_<split>.json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.card and not args.onnx:
        parser.error("--card goes with --onnx")
    if args.onnx and (args.inference_scale != 1.0 or args.test_time_flips):
        parser.error("--inference-scale and --test-time-flips go with --checkpoint_path "
                     "(an ONNX file has them built in)")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be >= 1")
    return args


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    """Evaluate what ``args`` names and write the JSON; returns the scores."""
    if args.checkpoint_path:
        target = checkpoint_target(args.checkpoint_path, args.input_size, args.inference_scale, args.test_time_flips)
    else:
        target = onnx_target(args.onnx, args.card)
    target.restore = args.restore or target.restore
    output = args.output or (target.run_dir / f"eval_{args.split}.json" if target.run_dir else None)
    dataset_name = args.dataset or target.dataset
    if dataset_name is None:
        raise ValueError(f"{args.onnx}: no model card next to it; pass --card or --dataset")
    dataset = get_dataset(dataset_name, root=args.data_root or target.data_root, split=args.split)
    scores = evaluate(target, dataset, args.limit, progress=not args.no_progress)
    scores["command"] = shlex.join(["python", "-m", "training.evaluate", *argv])
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(scores, indent=2) + "\n")
        scores["written_to"] = str(output)
    return scores


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        scores = run(args, argv)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"evaluation failed: {error}")
    per_class = ", ".join(f"{name} {value:.3f}" if value is not None else f"{name} n/a"
                          for name, value in scores["per_class_iou"].items())
    print(f"{scores['dataset']}/{scores['split']}: {scores['images']} images at original resolution, "
          f"mIoU {scores['mean_iou']:.4f}, Dice {scores['dice']:.4f}, pixel accuracy "
          f"{scores['pixel_accuracy']:.4f}\nper-class IoU: {per_class}")
    if "written_to" in scores:
        print(f"wrote {scores['written_to']}")


if __name__ == "__main__":
    main()
