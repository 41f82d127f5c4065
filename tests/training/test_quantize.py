"""The INT8 variants: the bundled ones agree with FP32 on real validation images, and `training.quantize`
writes a variant whose card the readers accept and whose hash they check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from modelcard.card import ModelCardError, load_card, verify_onnx
from modelcard.geometry import letterbox
from modelcard.onnx_runner import OnnxRunner
from training.datasets import get_dataset
from training.quantize import main as quantize_main
from training.quantize import quantize_command

ENGINES = Path(__file__).resolve().parents[2] / "engines"
BUNDLED = ("polyp", "camvid")
MIN_AGREEMENT = 0.97
REDUCED_WEIGHT_LIMIT = 64  # |w| <= 64: two uint8 x int8 products sum within int16 (2 x 255 x 64 < 32767)
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


def int8_weights(path: Path) -> list[np.ndarray]:
    """The int8 initializers that DequantizeLinear nodes read: the quantized weights."""
    model = onnx.load(str(path))
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    weights = [numpy_helper.to_array(initializers[node.input[0]]) for node in model.graph.node
               if node.op_type == "DequantizeLinear" and node.input[0] in initializers]
    return [weight for weight in weights if weight.dtype == np.int8]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_int8_weights_keep_to_7_bits_so_cpus_without_vnni_do_not_saturate(name):
    card = load_card(ENGINES / f"{name}.json")
    weights = int8_weights(verify_onnx(card, "int8"))
    assert weights, "no quantized weights found"
    largest = max(int(np.abs(weight.astype(np.int16)).max()) for weight in weights)
    assert largest <= REDUCED_WEIGHT_LIMIT, f"{name}: an int8 weight of {largest} overflows AVX2's int16 pairs"
    assert card.quantization["onnx_int8"].reduce_range and "7-bit" in card.quantization["onnx_int8"].weights


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
    assert "--keep-fp32 Softmax" in recipe.command and "--full-range" not in recipe.command and recipe.reduce_range
    assert max(int(np.abs(weight.astype(np.int16)).max()) for weight in int8_weights(int8_path)) <= REDUCED_WEIGHT_LIMIT
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


def test_the_full_range_choice_is_part_of_the_recorded_command():
    assert quantize_command(Path("engines/polyp.json"), 64, (), full_range=True).endswith("--full-range")
    assert "--full-range" not in quantize_command(Path("engines/polyp.json"), 64, (), full_range=False)
