"""python -m benchmarks.int8: each bundled model's INT8 variant against its FP32 file, side by side in one run:
raw ONNX Runtime throughput and p50 (interleaved rounds at each concurrency, the service's session options) and
mIoU / Dice on the validation split at the original resolution (`training.evaluate`, the same scoring the card's
metrics come from).

    python -m benchmarks.int8 [--clients 1 8] [--requests 32] [--rounds 3] [--eval-images N]
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from benchmarks.cli import parser_for
from benchmarks.crf_quality import split_notes
from benchmarks.load import LoadResult
from benchmarks.raw import run_raw, session_for
from modelcard.card import INT8_ROLE, ModelCard, load_card
from modelcard.files import find_cards
from modelcard.geometry import letterbox
from service.backends.onnx import int8_instructions
from training.datasets import get_dataset
from training.evaluate import evaluate, onnx_target

PRECISIONS = ("fp32", "int8")


@dataclass
class Comparison:
    """One model: load results per precision and concurrency, and validation scores per precision."""

    model: str
    load: dict[str, dict[int, LoadResult]]  # precision -> clients -> rounds combined
    scores: dict[str, dict]  # precision -> training.evaluate's summary
    split: str


def int8_cards(models: Path) -> list[ModelCard]:
    """The cards in `models` that list an INT8 variant."""
    return [card for card in map(load_card, find_cards(models)) if card.files.onnx_int8 is not None]


def compare(card: ModelCard, clients: list[int], requests: int, rounds: int, images: int,
            eval_images: int | None, split: str = "val") -> Comparison:
    """Interleaved raw-loop rounds (FP32 then INT8 at each concurrency), then both scored on `split`."""
    dataset = get_dataset(card.training.dataset, root=card.training.data_root, split=split)
    canvases = [letterbox(dataset.load_image(sample.image_path), card.input_size)[0]
                for sample in dataset.samples[:images]]
    sessions = {precision: session_for(card, precision) for precision in PRECISIONS}
    load: dict[str, dict[int, LoadResult]] = {precision: {} for precision in PRECISIONS}
    for count in clients:
        runs: dict[str, list[LoadResult]] = {precision: [] for precision in PRECISIONS}
        for _ in range(rounds):
            for precision, session in sessions.items():
                runs[precision].append(run_raw(session, card, canvases, count, max(requests, 3 * count)))
        for precision in PRECISIONS:
            load[precision][count] = LoadResult.combined(runs[precision])
    scores = {precision: evaluate(onnx_target(card.onnx_file(precision), card.path), dataset, eval_images,
                                  progress=False) for precision in PRECISIONS}
    return Comparison(card.name, load, scores, split)


def markdown(comparisons: list[Comparison]) -> list[str]:
    """Speed and accuracy tables, INT8 against FP32 per model."""
    flags = ", ".join(int8_instructions()) or "none"
    lines = [f"CPU INT8 dot-product instructions: {flags}. Raw `session.run` loop (labels only), FP32 and INT8 "
             "rounds interleaved at each concurrency.", "",
             "| model | clients | FP32 img/s | INT8 img/s | INT8 / FP32 | FP32 p50 ms | INT8 p50 ms |",
             "|---|---|---|---|---|---|---|"]
    for comparison in comparisons:
        fp32, int8 = comparison.load["fp32"], comparison.load["int8"]
        for clients in sorted(fp32):
            lines.append(f"| {comparison.model} | {clients} | {fp32[clients].throughput:.2f} | "
                         f"{int8[clients].throughput:.2f} | {int8[clients].throughput / fp32[clients].throughput:.2f}x"
                         f" | {fp32[clients].percentile_ms(50):.0f} | {int8[clients].percentile_ms(50):.0f} |")
    lines += ["", "| model | split (images) | FP32 mIoU | INT8 mIoU | Δ mIoU | FP32 Dice | INT8 Dice | Δ Dice |",
              "|---|---|---|---|---|---|---|---|"]
    for comparison in comparisons:
        fp32, int8 = comparison.scores["fp32"], comparison.scores["int8"]
        lines.append(f"| {comparison.model} | {comparison.split} ({fp32['images']}) | {fp32['mean_iou']:.4f} | "
                     f"{int8['mean_iou']:.4f} | {int8['mean_iou'] - fp32['mean_iou']:+.4f} | {fp32['dice']:.4f} | "
                     f"{int8['dice']:.4f} | {int8['dice'] - fp32['dice']:+.4f} |")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = parser_for("python -m benchmarks.int8", __doc__)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--requests", type=int, default=32, help="Measured runs per round (at least 3 per client).")
    parser.add_argument("--rounds", type=int, default=3, help="Alternations of FP32 and INT8 at each concurrency.")
    parser.add_argument("--images", type=int, default=16, help="Validation images the load cycles through.")
    parser.add_argument("--eval-images", type=int, help="Score only the first N validation images (default: all).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cards = int8_cards(args.models)
    if not cards:
        raise SystemExit(f"no card in {args.models} lists files.{INT8_ROLE}; run python -m training.quantize first")
    comparisons = [compare(card, args.clients, args.requests, args.rounds, args.images, args.eval_images)
                   for card in cards]
    print("\n".join([*markdown(comparisons), "", *split_notes(cards, "val")]))
    print(f"\nLoad average at the end (1/5/15 min): {', '.join(f'{v:.2f}' for v in os.getloadavg())}.")


if __name__ == "__main__":
    main()
