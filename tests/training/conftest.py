"""Builders for tiny datasets in each real on-disk format, written into tmp_path by the tests."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.images import save_gray, save_rgb
from training.datasets import data_root
from training.datasets.voc import PALETTE as VOC_PALETTE


@pytest.fixture
def real_data_root() -> Path:
    root = data_root()
    if not (root / "kvasir-seg").is_dir() or not (root / "camvid").is_dir():
        pytest.skip(f"real datasets not found under {root} (set DEEPLAB_DATA_ROOT)")
    return root


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    """Two VOC samples: palette PNG masks with a 255 border, as the real SegmentationClass."""
    root = tmp_path / "VOCdevkit" / "VOC2012"
    ids = ["2007_000001", "2007_000002"]
    for index, sample_id in enumerate(ids):
        save_rgb(root / "JPEGImages" / f"{sample_id}.jpg", 20, 30, seed=index)
        classes = np.zeros((20, 30), np.uint8)
        classes[5:15, 5:25] = 15 if index == 0 else 20  # person / tvmonitor
        classes[5:15, 5] = classes[5:15, 24] = 255  # the VOC "void" outline
        mask = Image.fromarray(classes, mode="P")
        mask.putpalette([c for colour in VOC_PALETTE for c in colour] + [224, 224, 192] * 235)
        path = root / "SegmentationClass" / f"{sample_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        mask.save(path)
    split_dir = root / "ImageSets" / "Segmentation"
    split_dir.mkdir(parents=True)
    (split_dir / "train.txt").write_text("\n".join(ids) + "\n")
    return root


@pytest.fixture
def cityscapes_root(tmp_path: Path) -> Path:
    """One Cityscapes frame whose labelIds cover road (7), car (26), bicycle (33) and
    non-training ids (0 unlabeled, 4 static, 30 trailer)."""
    root = tmp_path / "cityscapes"
    stem = "aachen_000000_000019"
    save_rgb(root / "leftImg8bit" / "train" / "aachen" / f"{stem}_leftImg8bit.png", 8, 12)
    label_ids = np.array([[7, 26, 33, 0, 4, 30]], np.uint8).repeat(8, 0).repeat(2, 1)
    save_gray(root / "gtFine" / "train" / "aachen" / f"{stem}_gtFine_labelIds.png", label_ids)
    return root


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    """A generic folder: three pairs, a train/val split, classes.txt."""
    root = tmp_path / "my-data"
    for index, stem in enumerate(["a", "b", "c"]):
        save_rgb(root / "images" / f"{stem}.png", 16, 24, seed=index)
        mask = np.zeros((16, 24), np.uint8)
        mask[:, 12:] = 2
        mask[0] = 255
        save_gray(root / "masks" / f"{stem}.png", mask)
    (root / "classes.txt").write_text("background\nroad\ncar\n")
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("a\nc\n")
    (root / "splits" / "val.txt").write_text("b\n")
    return root


@pytest.fixture
def kvasir_root(tmp_path: Path) -> Path:
    """A Kvasir-SEG-format copy in miniature: one JPEG, one 0/255 mask, a train split."""
    root = tmp_path / "kvasir-seg"
    save_rgb(root / "images" / "polyp1.jpg", 30, 40)
    mask = np.zeros((30, 40), np.uint8)
    mask[10:20, 10:30] = 255
    save_gray(root / "masks" / "polyp1.png", mask)
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("polyp1\n")
    return root


# --- export and evaluation: one tiny run, exported once per session -----------------------------

TINY_INPUT_SIZE = 96  # export size; the run's crop size is 64, so export really rebuilds the model


@pytest.fixture(scope="session")
def tiny_kvasir_run(tmp_path_factory) -> Path:
    """A run directory as ``training.train`` leaves it (``config.json`` + ``best.weights.h5``) for an
    untrained MobileNetV2-0.35 DeepLabv3+ on Kvasir-SEG: export and evaluation need the files, not
    a trained model. Evaluated on 2 val images so that the export puts metrics in the card."""
    import json

    if not (data_root() / "kvasir-seg").is_dir():
        pytest.skip(f"Kvasir-SEG not found under {data_root()} (set DEEPLAB_DATA_ROOT)")
    import keras

    from training import evaluate
    from training.config import TrainConfig
    from training.datasets import get_dataset
    from training.model import build_deeplab

    run_dir = tmp_path_factory.mktemp("checkpoints") / "tiny"
    run_dir.mkdir()
    dataset = get_dataset("kvasir", split="train")
    config = {**TrainConfig(run_name="tiny", backbone_options={"alpha": 0.35}, crop_size=64).to_dict(),
              "classes": dataset.classes, "palette": [list(color) for color in dataset.palette],
              "ignore_index": dataset.ignore_index, "num_classes": dataset.num_classes}
    (run_dir / "config.json").write_text(json.dumps(config))
    keras.utils.set_random_seed(0)
    model = build_deeplab(2, input_size=(64, 64), backbone_options={"alpha": 0.35})
    model.save_weights(run_dir / "best.weights.h5")
    evaluate.main(["--checkpoint_path", str(run_dir), "--input-size", str(TINY_INPUT_SIZE), "--limit", "2",
                   "--no-progress"])
    return run_dir


@pytest.fixture(scope="session")
def tiny_kvasir_export(tiny_kvasir_run, tmp_path_factory) -> dict:
    """``python -m training.export --onnx --int8 --tflite --engines-dir`` on ``tiny_kvasir_run``: the
    exporter's summary plus ``output_dir`` and ``engines_dir``."""
    from training import export

    output_dir, engines_dir = tmp_path_factory.mktemp("export"), tmp_path_factory.mktemp("engines")
    args = export.parse_args(["--checkpoint_path", str(tiny_kvasir_run), "--output_dir", str(output_dir),
                              "--input-size", str(TINY_INPUT_SIZE), "--onnx", "--int8", "--tflite", "--name", "tiny",
                              "--engines-dir", str(engines_dir)])
    return {**export.export(args), "output_dir": output_dir, "engines_dir": engines_dir}
