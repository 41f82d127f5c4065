"""Further-split evaluations in a model card belong to that card's ONNX file."""

import pytest

from training.card_evaluations import add_evaluations


def scores(split, sha, miou=0.5):
    return {"split": split, "dataset": "camvid", "images": 3, "mean_iou": miou, "dice": 0.6,
            "pixel_accuracy": 0.9, "per_class_iou": {"sky": 0.9},
            "command": f"python -m training.evaluate --split {split}",
            "source": {"kind": "onnx", "path": "engines/x.onnx", "sha256": sha}, "confusion_matrix": [[1]]}


def test_entries_are_summaries_replaced_per_split():
    card = {"files": {"onnx_sha256": "a" * 64}}
    card = add_evaluations(card, [scores("val", "a" * 64), scores("heldout-X", "a" * 64)], {"heldout-X": "drive X"})
    card = add_evaluations(card, [scores("val", "a" * 64, miou=0.7)], {})
    by_split = {entry["split"]: entry for entry in card["evaluations"]}
    assert list(by_split) == ["val", "heldout-X"] and by_split["val"]["mean_iou"] == 0.7
    assert by_split["heldout-X"]["description"] == "drive X" and "confusion_matrix" not in by_split["val"]
    assert by_split["val"]["measured_on"]["sha256"] == "a" * 64


def test_scores_of_another_onnx_file_are_refused():
    with pytest.raises(ValueError, match="card's ONNX"):
        add_evaluations({"files": {"onnx_sha256": "a" * 64}}, [scores("val", "b" * 64)], {})
