"""Splits by video sequence (training.datasets.sequences): a held-out drive never leaks into training."""

from pathlib import Path

import numpy as np
import pytest

from training.datasets import get_dataset
from training.datasets.sequences import parse_split, select_frames, sequence_of

from .conftest import save_gray, save_rgb

FOLDERS = ("train", "val")


def sequences(dataset) -> set[str]:
    return {sequence_of(sample.image_path) for sample in dataset.samples}


@pytest.fixture
def tiny_camvid(tmp_path: Path) -> Path:
    """train: 2 frames of AAA, 3 of BBB; val: 2 frames of BBB, 1 of CCC (CamVid layout)."""
    frames = {"train": ["AAA_001", "AAA_002", "BBB_001", "BBB_002", "BBB_003"],
              "val": ["BBB_100", "BBB_101", "CCC_001"]}
    for split, names in frames.items():
        for index, name in enumerate(names):
            save_rgb(tmp_path / split / f"{name}.png", 6, 8, seed=index)
            save_gray(tmp_path / f"{split}annot" / f"{name}.png", np.full((6, 8), index % 11))
    return tmp_path


def test_sequence_is_the_file_name_prefix():
    assert sequence_of("/data/camvid/train/0016E5_07959.png") == "0016E5"
    with pytest.raises(ValueError, match="no '_'"):
        sequence_of("frame.png")


@pytest.mark.parametrize("split, count, seen", [
    ("train", 5, {"AAA", "BBB"}), ("val", 3, {"BBB", "CCC"}), ("trainval", 8, {"AAA", "BBB", "CCC"}),
    ("train-no-AAA", 3, {"BBB"}), ("trainval-no-BBB", 3, {"AAA", "CCC"}),
    ("trainval-no-AAA,CCC", 5, {"BBB"}), ("heldout-BBB", 5, {"BBB"}), ("heldout-AAA,CCC", 3, {"AAA", "CCC"}),
])  # fmt: skip
def test_derived_splits_select_by_sequence(tiny_camvid, split, count, seen):
    dataset = get_dataset("camvid", root=tiny_camvid, split=split)
    assert len(dataset.samples) == count and sequences(dataset) == seen
    for sample in dataset.samples:  # each mask comes from its own folder's annotations
        annotations = sample.image_path.parent.parent / f"{sample.image_path.parent.name}annot"
        assert sample.mask_path == annotations / sample.image_path.name
        assert sample.mask_path.is_file()


def test_heldout_and_its_complement_partition_all_frames(tiny_camvid):
    held = get_dataset("camvid", root=tiny_camvid, split="heldout-BBB")
    rest = get_dataset("camvid", root=tiny_camvid, split="trainval-no-BBB")
    held_paths = {s.image_path for s in held.samples}
    rest_paths = {s.image_path for s in rest.samples}
    assert not held_paths & rest_paths and not sequences(held) & sequences(rest)
    assert len(held_paths | rest_paths) == 8


@pytest.mark.parametrize("split, message", [
    ("heldout-ZZZ", "no frames of sequence"), ("train-no-CCC", "no frames of sequence"),
    ("test-no-AAA", "unknown base split"), ("nonsense", "unknown split"), ("heldout-", "unknown split"),
])  # fmt: skip
def test_bad_split_names_are_errors(tiny_camvid, split, message):
    with pytest.raises(ValueError, match=message):
        get_dataset("camvid", root=tiny_camvid, split=split)


def test_parse_split_plain_folder_keeps_everything():
    spec = parse_split("val", FOLDERS)
    assert spec.bases == ("val",) and spec.keep is None and not spec.drop
    def frames(base):
        return [Path(f"{base}/X_1.png"), Path(f"{base}/Y_1.png")]

    assert select_frames("train-no-X", FOLDERS, frames) == [Path("train/Y_1.png")]


def test_real_camvid_heldout_drive_split(real_data_root):
    """The real CamVid: val is all 0016E5 (which train also holds); 0001TP is a whole unseen drive."""
    train, val = get_dataset("camvid", split="train"), get_dataset("camvid", split="val")
    assert sequences(val) == {"0016E5"} and sequences(val) <= sequences(train)
    held = get_dataset("camvid", split="heldout-0001TP")
    rest = get_dataset("camvid", split="train-no-0001TP")
    assert len(held.samples) == 62 and sequences(held) == {"0001TP"}
    assert len(rest.samples) == 305 and sequences(rest) == {"0006R0", "0016E5"}
    assert not sequences(held) & sequences(rest)
    assert len(get_dataset("camvid", split="trainval-no-0001TP").samples) == 305 + 101
