"""The INT8 variants: the bundled ones agree with FP32 on real validation images, and `training.quantize`
writes a variant whose card the readers accept and whose hash they check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from modelcard.card import ModelCardError, load_card, verify_onnx
from modelcard.geometry import letterbox
from modelcard.onnx_runner import OnnxRunner
from training.datasets import get_dataset
from training.quantize import main as quantize_main

ENGINES = Path(__file__).resolve().parents[2] / "engines"
BUNDLED = ("polyp", "camvid")
MIN_AGREEMENT = 0.97
IMAGES = slice(4, 10)  # validation images past the 4 the card's parity entry was measured on


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_int8_labels_agree_with_fp32_on_validation_images(name):
    card = load_card(ENGINES / f"{name}.json", verify_files=True)
    int8_path = verify_onnx(card, "int8")
    dataset = get_dataset(card.training.dataset, root=card.training.data_root, split="val")
    images = np.stack([letterbox(dataset.load_image(sample.image_path), card.input_size)[0]
                       for sample in dataset.samples[IMAGES]])
    _, fp32_labels = OnnxRunner(card.onnx_path)(images)
    _, int8_labels = OnnxRunner(int8_path)(images)
    agreement = float((fp32_labels == int8_labels).mean())
    assert agreement >= MIN_AGREEMENT, f"{name}: INT8 labels agree with FP32 on {agreement:.4f} of pixels"
    assert int8_path.stat().st_size < card.onnx_path.stat().st_size / 2, "INT8 weights should be ~4x smaller"


def test_quantize_writes_the_variant_into_the_card_and_its_hash_is_checked(segmentation_model, tmp_path):
    card_path = tmp_path / segmentation_model.path.name
    shutil.copy(segmentation_model.path, card_path)
    shutil.copy(segmentation_model.onnx_path, tmp_path / segmentation_model.files.onnx)
    quantize_main(["--card", str(card_path), "--calibration-images", "2", "--keep-fp32", "Softmax"])

    card = load_card(card_path, verify_files=True)
    int8_path = verify_onnx(card, "int8")
    assert int8_path.name == f"{Path(card.files.onnx).stem}.int8.onnx"
    recipe = card.quantization["onnx_int8"]
    assert recipe.calibration_images == 2 and recipe.kept_fp32 == ["Softmax"] and recipe.format == "QDQ"
    assert "--keep-fp32 Softmax" in recipe.command
    assert card.export_parity["onnx_int8"].label_agreement >= MIN_AGREEMENT
    assert card.to_json()["files"]["onnx"] == segmentation_model.files.onnx  # the FP32 entry is untouched

    int8_path.write_bytes(int8_path.read_bytes() + b"\0")
    with pytest.raises(ModelCardError, match="does not match files.onnx_int8_sha256"):
        verify_onnx(card, "int8")


def test_a_card_without_a_variant_says_how_to_make_one(segmentation_model, tmp_path):
    data = segmentation_model.to_json()
    for key in ("onnx_int8", "onnx_int8_sha256"):
        data["files"].pop(key, None)
    path = tmp_path / "card.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelCardError, match="python -m training.quantize"):
        load_card(path).onnx_file("int8")
