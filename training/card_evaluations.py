"""Add evaluations on further splits to a model card, next to its ``metrics`` (the val split).

    python -m training.card_evaluations --card engines/polyp.json \
        --add eval_val@mixed.json [--describe "val@mixed=Kvasir val under 3 appearance shifts"]

Each JSON written by ``python -m training.evaluate`` (or one row of ``training.shift_report``)
becomes an entry of the card's ``evaluations`` list: split, image count, mIoU, Dice, pixel
accuracy, per-class IoU, the ONNX file's sha256 it was measured on, and its exact command. An
entry for the same split replaces the older one. The ONNX hash must match the card's, so a card
never lists scores of another model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

KEPT = ("split", "dataset", "images", "mean_iou", "dice", "pixel_accuracy", "per_class_iou",
        "input_size", "resolution", "resize", "pad_value", "exposure_target_mean", "restore", "command")


def summary(scores: dict) -> dict:
    entry = {key: scores[key] for key in KEPT if key in scores}
    source = scores.get("source", {})
    entry["measured_on"] = {"kind": source.get("kind"), "path": source.get("path"),
                            "sha256": source.get("sha256") or scores.get("weights_sha256")}
    return entry


def add_evaluations(card: dict, evaluations: list[dict], descriptions: dict[str, str]) -> dict:
    onnx_sha = card.get("files", {}).get("onnx_sha256")
    entries = {entry["split"]: entry for entry in card.get("evaluations", [])}
    for scores in evaluations:
        entry = summary(scores)
        if entry["measured_on"]["kind"] == "onnx" and entry["measured_on"]["sha256"] != onnx_sha:
            raise ValueError(f"{entry['split']}: measured on ONNX {entry['measured_on']['sha256']}, "
                             f"but the card's ONNX is {onnx_sha}")
        if entry["split"] in descriptions:
            entry["description"] = descriptions[entry["split"]]
        entries[entry["split"]] = entry
    return {**card, "evaluations": list(entries.values())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.card_evaluations", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--card", type=Path, required=True)
    parser.add_argument("--add", type=Path, nargs="+", required=True, help="training.evaluate JSON files")
    parser.add_argument("--describe", nargs="*", default=[], metavar="SPLIT=TEXT",
                        help="what a split is, stored with its entry")
    args = parser.parse_args(argv)
    descriptions = dict(item.split("=", 1) for item in args.describe)
    card = json.loads(args.card.read_text())
    updated = add_evaluations(card, [json.loads(path.read_text()) for path in args.add], descriptions)
    from modelcard.card import validate_card

    validate_card(updated, str(args.card))
    args.card.write_text(json.dumps(updated, indent=2) + "\n")
    print(f"{args.card}: evaluations on {[entry['split'] for entry in updated['evaluations']]}")


if __name__ == "__main__":
    main()
