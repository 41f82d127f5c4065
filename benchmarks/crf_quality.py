"""python -m benchmarks.crf_quality: Dice / mIoU without the CRF and with each CRF preset, and what each costs
next to one inference, for every bundled model on a split of its dataset.

Every image goes the service's way: letterbox, the ONNX model (labels and probabilities), the CRF on the image's
part of the input, labels back to the original resolution by nearest neighbour (`modelcard.geometry.resize_labels`),
scored against the original-resolution mask with ignored pixels left out. Inference and every CRF variant run on
each image in turn, so a change in the machine's load hits them alike; times are medians per image.

    python -m benchmarks.crf_quality [--split val] [--limit N] [--preset seed fast gentle]
        [--try NAME:key=value,...] [--output report.md] [--record]

`--try` adds a candidate setting (`CrfSettings` fields, e.g. `wide:preset=fast,bilateral_srgb=13`) to choose a
preset by measurement; choose on `--split train` and report on val. `--record` writes each model's best named preset
that costs at most one inference (by Dice for one foreground class, else mIoU) into its card's `crf`, where the
service reads it; a choice among a few presets on the split it is then reported on is slightly optimistic there.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.cli import parser_for
from benchmarks.raw import session_for
from modelcard.card import ModelCard, load_card, validate_card, write_card
from modelcard.files import find_cards
from modelcard.geometry import crop, letterbox, resize_labels
from service.crf import refine
from service.settings import CRF_PRESETS, CrfSettings
from training.datasets import IGNORE_INDEX, get_dataset
from training.metrics import confusion_matrix, summarize

NO_CRF = "no CRF"


@dataclass(frozen=True)
class Score:
    """One model and one variant (no CRF, or a CRF setting) over a split."""

    model: str
    split: str
    images: int
    variant: str
    mean_iou: float
    dice: float
    crf_ms: float | None  # median per image; None without CRF
    inference_ms: float  # median per image (labels + probabilities), measured in the same loop


def parse_variant(text: str) -> tuple[str, CrfSettings]:
    """`NAME:key=value,...` -> (NAME, CrfSettings(**fields)); a bad field fails here, naming it."""
    name, _, fields = text.partition(":")
    if not name or not fields:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME:key=value[,key=value...]")
    values = dict(field.split("=", 1) for field in fields.split(","))
    return name, CrfSettings(**values)


def measure(card: ModelCard, variants: dict[str, CrfSettings], split: str, limit: int | None) -> list[Score]:
    """Scores of `card`'s ONNX model on `split` without the CRF and with each variant."""
    session = session_for(card)
    dataset = get_dataset(card.training.dataset, root=card.training.data_root, split=split)
    samples = dataset.samples[:limit] if limit else dataset.samples
    outputs = [card.outputs.labels.name, card.outputs.probabilities.name]
    names = [NO_CRF, *variants]
    confusion = {name: np.zeros((dataset.num_classes, dataset.num_classes), dtype=np.int64) for name in names}
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for sample in samples:
        image, mask = dataset.load_sample(sample)
        canvas, placement = letterbox(image, card.input_size)
        started = time.perf_counter()
        labels, probabilities = session.run(outputs, {card.input.name: canvas[None]})
        seconds[NO_CRF].append(time.perf_counter() - started)
        predictions = {NO_CRF: crop(labels[0], placement)}
        pixels, unaries = crop(canvas, placement), crop(probabilities[0], placement)
        for name, params in variants.items():
            started = time.perf_counter()
            predictions[name] = refine(pixels, unaries, params).argmax(axis=-1).astype(np.uint8)
            seconds[name].append(time.perf_counter() - started)
        for name, predicted in predictions.items():
            confusion[name] += confusion_matrix(mask, resize_labels(predicted, mask.shape), dataset.num_classes,
                                                ignore_index=IGNORE_INDEX)
    inference_ms = float(np.median(seconds[NO_CRF]) * 1000)
    scores = []
    for name in names:
        summary = summarize(confusion[name], dataset.classes)
        crf_ms = None if name == NO_CRF else float(np.median(seconds[name]) * 1000)
        scores.append(Score(card.name, split, len(samples), name, summary["mean_iou"], summary["dice"], crf_ms,
                            inference_ms))
    return scores


def choose_preset(card: ModelCard, scores: list[Score], command: str) -> dict | None:
    """`card`'s `crf` entry: of the named presets measured that cost at most one inference, the best by the
    model's metric (Dice for one foreground class, else mIoU), with every score it was chosen among."""
    metric = "dice" if card.num_classes == 2 else "mean_iou"
    named = [score for score in scores if score.model == card.name and score.variant in (NO_CRF, *CRF_PRESETS)]
    eligible = [score for score in named if score.variant != NO_CRF and score.crf_ms <= score.inference_ms]
    if not eligible:
        return None
    best = max(eligible, key=lambda score: getattr(score, metric))
    return {"preset": best.variant, "metric": metric, "split": best.split, "images": best.images,
            "scores": {score.variant: round(getattr(score, metric), 4) for score in named}, "command": command}


def record_choices(cards: list[ModelCard], scores: list[Score], command: str) -> list[str]:
    """Write each card's `crf` entry (`choose_preset`); one line per card saying what it got."""
    lines = []
    for card in cards:
        choice = choose_preset(card, scores, command)
        if choice is None:
            lines.append(f"{card.name}: no named preset costs at most one inference; card unchanged")
            continue
        write_card(validate_card({**card.to_json(), "crf": choice}, str(card.path)), card.path)
        lines.append(f"{card.name}: crf.preset = {choice['preset']} ({choice['metric']} {choice['scores']}) "
                     f"written to {card.path}")
    return lines


def shared_sequences(card: ModelCard, split: str) -> list[str]:
    """Recording sequences (the file-name part before the first `_`, as in CamVid's `0016E5_07959`) that `split`
    shares with the training split: frames of one video on both sides, so its scores are not held-out ones."""
    def sequences(name: str) -> set[str]:
        dataset = get_dataset(card.training.dataset, root=card.training.data_root, split=name)
        return {sample.image_path.stem.split("_")[0] for sample in dataset.samples if "_" in sample.image_path.stem}

    return sorted(sequences(split) & sequences(card.training.split))


def split_notes(cards: list[ModelCard], split: str) -> list[str]:
    """One sentence per model whose `split` is not disjoint from its training split."""
    return [f"{card.name}: its {split} split shares recording sequence(s) {', '.join(shared)} with "
            f"{card.training.split}, so its {split} scores are not held-out ones."
            for card in cards if (shared := shared_sequences(card, split))]


def describe_variant(name: str, params: CrfSettings | None) -> str:
    if params is None:
        return name
    return (f"{name} (scale {params.scale:g}, {params.iterations} it., bilateral {params.bilateral_sxy:g}/"
            f"{params.bilateral_srgb:g} w {params.bilateral_compat:g}, Gaussian {params.gaussian_sxy:g} w "
            f"{params.gaussian_compat:g})")


def markdown(scores: list[Score], variants: dict[str, CrfSettings]) -> list[str]:
    """A table: per model and variant, the scores, their change against no CRF, and CRF / inference time."""
    lines = ["| model | split (images) | variant | mIoU | Dice | Δ mIoU | Δ Dice | CRF ms | inference ms "
             "| CRF / inference |", "|---|---|---|---|---|---|---|---|---|---|"]
    baseline = {score.model: score for score in scores if score.variant == NO_CRF}
    for score in scores:
        base = baseline[score.model]
        crf = "-" if score.crf_ms is None else f"{score.crf_ms:.0f}"
        ratio = "-" if score.crf_ms is None else f"{score.crf_ms / score.inference_ms:.2f}x"
        lines.append(f"| {score.model} | {score.split} ({score.images}) | "
                     f"{describe_variant(score.variant, variants.get(score.variant))} | {score.mean_iou:.4f} | "
                     f"{score.dice:.4f} | {score.mean_iou - base.mean_iou:+.4f} | {score.dice - base.dice:+.4f} | "
                     f"{crf} | {score.inference_ms:.0f} | {ratio} |")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = parser_for("python -m benchmarks.crf_quality", __doc__)
    parser.add_argument("--model", action="append", help="Model to measure (repeatable; default: every card).")
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, help="Only the first N images of the split.")
    parser.add_argument("--preset", nargs="*", choices=sorted(CRF_PRESETS), default=sorted(CRF_PRESETS),
                        help="CRF presets to measure (default: all).")
    parser.add_argument("--try", dest="candidates", type=parse_variant, action="append", default=[],
                        metavar="NAME:key=value,...", help="An extra CRF setting to measure.")
    parser.add_argument("--output", type=Path, help="Also write the table (markdown) here.")
    parser.add_argument("--record", action="store_true",
                        help="Write each model's best named preset into its card (crf), for the service.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cards = [load_card(path) for path in find_cards(args.models)]
    cards = [card for card in cards if args.model is None or card.name in args.model]
    variants = {name: CrfSettings(preset=name) for name in args.preset} | dict(args.candidates)
    scores = [score for card in cards for score in measure(card, variants, args.split, args.limit)]
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    lines = markdown(scores, variants) + ["", *split_notes(cards, args.split),
                                          f"Load average at the end (1/5/15 min): {load}."]
    print("\n".join(lines))
    if args.output:
        args.output.write_text("\n".join(lines) + "\n")
    if args.record:
        command = shlex.join(["python", "-m", "benchmarks.crf_quality", *(argv if argv is not None else sys.argv[1:])])
        print("\n".join(record_choices(cards, scores, command)))


if __name__ == "__main__":
    main()
