"""Evaluation scores at the ORIGINAL image resolution, for checkpoints and exported ONNX files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from modelcard.geometry import PAD_VALUE, crop, letterbox, resize_channels
from training import evaluate
from training.datasets import IGNORE_INDEX, data_root, get_dataset

SCORE_KEYS = {"mean_iou", "per_class_iou", "dice", "per_class_dice", "pixel_accuracy", "confusion_matrix"}


@pytest.fixture(scope="module")
def onnx_path(tiny_kvasir_export):
    return tiny_kvasir_export["engines_dir"] / "tiny.onnx"


def test_onnx_evaluation_writes_scores_over_original_resolution_pixels(onnx_path, tmp_path):
    output = tmp_path / "scores.json"
    evaluate.main(["--onnx", str(onnx_path), "--split", "val", "--limit", "3", "--output", str(output),
                   "--no-progress"])
    scores = json.loads(output.read_text())
    assert SCORE_KEYS <= set(scores)
    assert scores["images"] == 3 and scores["split"] == "val" and scores["source"]["kind"] == "onnx"
    for name in ("mean_iou", "dice", "pixel_accuracy"):
        assert 0.0 <= scores[name] <= 1.0, name
    for name in ("per_class_iou", "per_class_dice"):
        assert set(scores[name]) == {"background", "polyp"}
        assert all(0.0 <= value <= 1.0 for value in scores[name].values()), name
    original_pixels = 0
    for sample in get_dataset("kvasir", split="val").samples[:3]:
        with Image.open(sample.mask_path) as mask:
            original_pixels += mask.width * mask.height
    confusion = np.array(scores["confusion_matrix"])
    assert confusion.shape == (2, 2) and confusion.sum() == original_pixels
    assert scores["pixel_accuracy"] == pytest.approx(np.trace(confusion) / original_pixels)


def test_predicted_masks_come_back_at_each_images_own_size_by_either_restore_rule(onnx_path):
    target = evaluate.onnx_target(onnx_path, card_path=None)
    dataset = get_dataset("kvasir", split="val")
    images = [dataset.load_image(sample.image_path) for sample in dataset.samples[:6]]
    assert len({image.shape for image in images}) > 1, "want images of different sizes"
    for mode in ("labels-nearest", "probabilities-bilinear"):
        target.restore = mode
        for image in images:
            labels = evaluate.predict_labels(target, image)
            assert labels.shape == image.shape[:2] and labels.dtype == np.uint8


def test_a_card_that_names_exposure_normalisation_is_evaluated_through_it(onnx_path, tmp_path):
    card = json.loads(onnx_path.with_suffix(".json").read_text())
    card["input"]["exposure"] = {"method": "gamma-to-mean", "target_mean": 150.0}
    card_path = tmp_path / "tiny.json"
    card_path.write_text(json.dumps(card))
    shutil.copy2(onnx_path, tmp_path / "tiny.onnx")
    target = evaluate.onnx_target(tmp_path / "tiny.onnx", card_path)
    assert target.exposure_target_mean == 150.0
    plain_runner, fed = target.runner, []

    def recording_runner(batch):
        fed.append(batch)
        return plain_runner(batch)

    target.runner = recording_runner
    dataset = get_dataset("kvasir", split="val")
    image = dataset.load_image(dataset.samples[0].image_path)
    evaluate.predict_labels(target, image)
    expected, _ = letterbox(image, target.input_size, target.pad_value, exposure_target_mean=150.0)
    np.testing.assert_array_equal(fed[0][0], expected)
    assert not np.array_equal(expected, letterbox(image, target.input_size, target.pad_value)[0])


@pytest.mark.usefixtures("real_data_root")
@pytest.mark.parametrize("size", [(256, 256), (128, 320)])
def test_letterbox_keeps_aspect_ratio_and_maps_a_mask_back_onto_its_pixels(size):
    dataset = get_dataset("kvasir", split="val")
    image, mask = dataset.load_sample(dataset.samples[0])
    boxed, placement = letterbox(np.repeat(mask[..., None] * 255, 3, axis=-1), size)
    assert boxed.shape == (*size, 3)
    assert placement.height / placement.width == pytest.approx(mask.shape[0] / mask.shape[1], rel=0.02)
    assert placement.height == size[0] or placement.width == size[1]
    padding = np.ones(size, bool)
    padding[placement.top:placement.top + placement.height, placement.left:placement.left + placement.width] = False
    assert (boxed[padding] == PAD_VALUE).all(), "padding must be the training pipeline's mid-grey"
    foreground = boxed[..., 0].astype(np.float32) / 255
    restored = resize_channels(crop(np.stack([1 - foreground, foreground], axis=-1), placement), mask.shape)
    assert restored.shape == (*mask.shape, 2)
    assert np.mean(restored.argmax(axis=-1) == mask) > 0.98


def test_checkpoint_and_its_onnx_export_score_the_same(tiny_kvasir_run, onnx_path):
    checkpoint_scores = json.loads((tiny_kvasir_run / "eval_val.json").read_text())
    assert checkpoint_scores["source"]["kind"] == "checkpoint" and checkpoint_scores["images"] == 2
    target = evaluate.onnx_target(onnx_path, card_path=None)
    onnx_scores = evaluate.evaluate(target, get_dataset("kvasir", split="val"), limit=2, progress=False)
    checkpoint_confusion = np.array(checkpoint_scores["confusion_matrix"])
    onnx_confusion = np.array(onnx_scores["confusion_matrix"])
    assert checkpoint_confusion.sum() == onnx_confusion.sum()
    assert np.abs(checkpoint_confusion - onnx_confusion).sum() <= 1e-4 * onnx_confusion.sum()


def test_void_pixels_are_left_out_of_the_scores():
    if not (data_root() / "camvid").is_dir():
        pytest.skip(f"CamVid not found under {data_root()}")
    dataset = get_dataset("camvid", split="val")

    def always_sky(images):
        probabilities = np.zeros((*images.shape[:3], dataset.num_classes), np.float32)
        probabilities[..., 0] = 1.0
        return probabilities, np.zeros(images.shape[:3], np.uint8)

    target = evaluate.Target(always_sky, (96, 96), "camvid", None, {"source": {"kind": "test"}})
    scores = evaluate.evaluate(target, dataset, limit=1, progress=False)
    _, mask = dataset.load_sample(dataset.samples[0])
    assert (mask == IGNORE_INDEX).any(), "want a frame with void pixels"
    confusion = np.array(scores["confusion_matrix"])
    assert confusion.sum() == np.count_nonzero(mask != IGNORE_INDEX)
    assert confusion[:, 1:].sum() == 0
    assert confusion[:, 0].tolist() == np.bincount(mask[mask != IGNORE_INDEX], minlength=11).tolist()
    assert scores["per_class_iou"]["sky"] == pytest.approx(confusion[0, 0] / confusion.sum())


def test_onnx_without_a_card_needs_a_dataset(onnx_path, tmp_path):
    lone = shutil.copy2(onnx_path, tmp_path / "lone.onnx")
    with pytest.raises(SystemExit, match="pass --card or --dataset"):
        evaluate.main(["--onnx", str(lone), "--limit", "1", "--no-progress"])
