"""Appearance-shift report: one model on a split, clean and under each fixed shift.

    python -m training.shift_report --onnx engines/polyp.onnx --split val [--shifts mixed dark ...]
        [--limit N] [--output report.json]

Each row is ``python -m training.evaluate --onnx ... --split <split>@<shift>`` (see
``training.datasets.shifted``); the headline metric is Dice for two classes, else mIoU. The
JSON keeps every evaluation's full scores (per-class, confusion matrix), the markdown table goes
to stdout.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from training import evaluate
from training.datasets import get_dataset
from training.datasets.shifted import NAMES


def headline(scores: dict) -> tuple[str, float]:
    return ("dice", scores["dice"]) if len(scores["classes"]) == 2 else ("mean_iou", scores["mean_iou"])


def report(target: evaluate.Target, dataset_name: str, data_root: str | None, split: str,
           shifts: list[str], limit: int | None) -> dict:
    rows = {}
    for shift in ["", *shifts]:
        name = f"{split}@{shift}" if shift else split
        dataset = get_dataset(dataset_name, root=data_root, split=name)
        rows[shift or "none"] = evaluate.evaluate(target, dataset, limit, progress=False)
        metric, value = headline(rows[shift or "none"])
        print(f"{name}: {metric} {value:.4f}", file=sys.stderr, flush=True)
    return rows


def table(rows: dict) -> str:
    clean_metric, clean = headline(rows["none"])
    lines = [f"| shift | images | {clean_metric} | change |", "|---|---|---|---|"]
    for shift, scores in rows.items():
        _, value = headline(scores)
        lines.append(f"| {shift} | {scores['images']} | {value:.4f} | {value - clean:+.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m training.shift_report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--card", type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--dataset")
    parser.add_argument("--data-root")
    parser.add_argument("--shifts", nargs="+", choices=NAMES, default=list(NAMES))
    parser.add_argument("--limit", type=int)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    target = evaluate.onnx_target(args.onnx, args.card)
    dataset_name = args.dataset or target.dataset
    if dataset_name is None:
        parser.error(f"{args.onnx}: no model card next to it; pass --card or --dataset")
    rows = report(target, dataset_name, args.data_root or target.data_root, args.split, args.shifts, args.limit)
    result = {"command": shlex.join(["python", "-m", "training.shift_report", *argv]),
              **target.source, "split": args.split, "rows": rows}
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
