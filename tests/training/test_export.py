"""Export: SavedModel, ONNX and TFLite reproduce the Keras model on real images; the model card
is complete and its loader rejects broken cards with a message naming file and field."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modelcard import parity
from modelcard.card import ModelCardError, load_card, sha256_file, verify_onnx
from modelcard.geometry import letterbox
from training.datasets import get_dataset

ROOT = Path(__file__).resolve().parents[2]
EXPORTS = ("saved_model", "onnx", "tflite_fp32", "tflite_fp16", "onnx_int8")


@pytest.fixture(scope="module")
def fresh_images(tiny_kvasir_export) -> np.ndarray:
    """Val images the exporter's own parity check did not use (it takes the first 4)."""
    dataset = get_dataset("kvasir", split="val")
    return np.stack([letterbox(dataset.load_image(s.image_path), (96, 96))[0] for s in dataset.samples[4:7]])


@pytest.fixture(scope="module")
def keras_outputs(tiny_kvasir_run, fresh_images):
    from training.checkpoint import load_model, resolve_checkpoint
    from training.inference_graph import keras_reference

    model = load_model(resolve_checkpoint(tiny_kvasir_run), (96, 96))
    return keras_reference(model, fresh_images)


def test_exporter_checked_every_format_within_tolerance(tiny_kvasir_export):
    results = tiny_kvasir_export["export_parity"]
    assert set(results) == set(EXPORTS)
    for kind, result in results.items():
        assert result["images"] == 4
        max_diff, min_agreement = parity.TOLERANCES[kind]
        assert result["label_agreement"] >= min_agreement, kind
        assert max_diff is None or result["max_abs_prob_diff"] <= max_diff, kind


def test_onnx_and_tflite_match_keras_and_each_other_on_other_real_images(tiny_kvasir_export, fresh_images,
                                                                          keras_outputs):
    from modelcard.onnx_runner import OnnxRunner
    from training.tflite_runner import TFLiteRunner

    files = tiny_kvasir_export["files"]
    onnx = OnnxRunner(files["onnx"])(fresh_images)
    tflite = TFLiteRunner(files["tflite_fp32"])(fresh_images)
    tflite_fp16 = TFLiteRunner(files["tflite_fp16"])(fresh_images)
    for kind, outputs in (("onnx", onnx), ("tflite_fp32", tflite), ("tflite_fp16", tflite_fp16)):
        parity.check(kind, parity.measure(keras_outputs, outputs))
    parity.check("onnx", parity.measure(onnx, tflite))
    probabilities, labels = onnx
    assert probabilities.shape == (3, 96, 96, 2) and probabilities.dtype == np.float32
    assert labels.shape == (3, 96, 96) and labels.dtype == np.uint8
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    disagree = labels != probabilities.argmax(axis=-1)  # only where softmax rounds a near-tie
    assert np.all(np.abs(probabilities[..., 1] - probabilities[..., 0])[disagree] < 1e-6)


def test_onnx_interface_is_uint8_nhwc_with_dynamic_batch_and_opset_17(tiny_kvasir_export, fresh_images):
    import onnx

    from modelcard.onnx_runner import OnnxRunner

    model = onnx.load(tiny_kvasir_export["files"]["onnx"])
    assert {op.domain: op.version for op in model.opset_import}[""] >= 17

    def signature(values):
        return {value.name: (value.type.tensor_type.elem_type,
                             [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim])
                for value in values}

    assert signature(model.graph.input) == {"image": (onnx.TensorProto.UINT8, ["batch", 96, 96, 3])}
    assert signature(model.graph.output) == {"probabilities": (onnx.TensorProto.FLOAT, ["batch", 96, 96, 2]),
                                             "labels": (onnx.TensorProto.UINT8, ["batch", 96, 96])}
    runner = OnnxRunner(tiny_kvasir_export["files"]["onnx"])
    single, _ = runner(fresh_images[:1])
    batched, _ = runner(fresh_images)
    np.testing.assert_allclose(single[0], batched[0], atol=1e-6)


def test_card_is_complete_and_describes_the_export(tiny_kvasir_export, tiny_kvasir_run):
    card = load_card(tiny_kvasir_export["card"], verify_files=True)
    assert card.name == "tiny" and card.task == "semantic-segmentation"
    assert card.class_names == ["background", "polyp"] and card.ignore_index is None
    assert card.input.name == "image" and card.input.dtype == "uint8" and card.input_size == (96, 96)
    assert card.input.normalisation.formula == "x / 127.5 - 1"
    assert card.outputs.probabilities.name == "probabilities" and card.outputs.labels.name == "labels"
    assert card.architecture.backbone_options == {"alpha": 0.35}
    assert card.training.pretrained is False and "from scratch" in card.training.note
    assert card.training.recipe["crop_size"] == 64
    for command in ("python -m training.train", "python -m training.evaluate", "python -m training.export"):
        assert command in card.training.reproduce
    assert {kind: entry.model_dump() for kind, entry in card.export_parity.items()} == \
        tiny_kvasir_export["export_parity"]
    for role in ("tflite_fp32", "tflite_fp16"):
        assert getattr(card.files, f"{role}_sha256") == sha256_file(tiny_kvasir_export["files"][role])
    assert card.source_checkpoint.sha256 == sha256_file(tiny_kvasir_run / "best.weights.h5")
    evaluation = json.loads((tiny_kvasir_run / "eval_val.json").read_text())
    assert card.metrics is not None and card.metrics.images == 2
    assert card.metrics.mean_iou == evaluation["mean_iou"] and card.metrics.dice == evaluation["dice"]
    engines = tiny_kvasir_export["engines_dir"]
    assert sorted(path.name for path in engines.iterdir()) == ["tiny.int8.onnx", "tiny.json", "tiny.onnx"]
    shipped = load_card(engines / "tiny.json", verify_files=True)
    assert shipped.files.onnx_sha256 == card.files.onnx_sha256
    assert verify_onnx(shipped, "int8").name == "tiny.int8.onnx"
    assert "--int8" in shipped.quantization["onnx_int8"].command


@pytest.fixture
def card_copy(tiny_kvasir_export, tmp_path):
    """A writable copy of the exported card and its ONNX file."""
    for name in ("tiny.json", "tiny.onnx"):
        shutil.copy2(tiny_kvasir_export["engines_dir"] / name, tmp_path / name)
    return tmp_path / "tiny.json"


def _edit(path: Path, change) -> None:
    card = json.loads(path.read_text())
    change(card)
    path.write_text(json.dumps(card))


@pytest.mark.parametrize(("change", "message"), [
    (lambda card: card["input"].pop("height"), "missing required field 'input.height'"),
    (lambda card: card.pop("classes"), "missing required field 'classes'"),
    (lambda card: card["outputs"].pop("labels"), "missing required field 'outputs.labels'"),
    (lambda card: card["input"].update(dtype="float32"), "field 'input.dtype'"),
    (lambda card: card["classes"][1].update(id=5), "classes[1].id is 5"),
    (lambda card: card["classes"][0].update(color=[0, 0, 300]), "not RGB"),
    (lambda card: card["input"].update(exposure={"target_mean": 300}), "field 'input.exposure.target_mean'"),
])
def test_load_card_names_the_file_and_the_bad_field(card_copy, change, message):
    _edit(card_copy, change)
    with pytest.raises(ModelCardError) as error:
        load_card(card_copy)
    assert str(card_copy) in str(error.value) and message in str(error.value)


def test_card_of_a_run_that_normalised_exposure_names_its_target(tiny_kvasir_export, tiny_kvasir_run):
    from training.card_builder import build_card

    exported = load_card(tiny_kvasir_export["card"])
    config = json.loads((tiny_kvasir_run / "config.json").read_text())
    card = build_card(name="tiny", description="", config={**config, "exposure_target_mean": 101.5},
                      input_size=exported.input_size, files={"onnx": tiny_kvasir_export["files"]["onnx"]},
                      parity={}, metrics=None, checkpoint_path=tiny_kvasir_run / "best.weights.h5", reproduce="")
    assert card.exposure_target_mean == 101.5
    assert card.to_json()["input"]["exposure"] == {"method": "gamma-to-mean", "target_mean": 101.5}
    assert exported.exposure_target_mean is None and "exposure" not in exported.to_json()["input"]


def test_card_written_before_inference_scale_reads_as_scale_1_and_passes_on_unchanged(card_copy):
    def drop_scale(card):
        del card["architecture"]["inference_scale"], card["architecture"]["network_input_size"]

    _edit(card_copy, drop_scale)
    card = load_card(card_copy)
    assert card.architecture.inference_scale == 1.0 and card.architecture.network_input_size is None
    assert card.to_json() == json.loads(card_copy.read_text())


def test_load_card_rejects_unreadable_files_and_a_changed_onnx(card_copy):
    with pytest.raises(ModelCardError, match="model card not found"):
        load_card(card_copy.with_name("absent.json"))
    card_copy.with_suffix(".onnx").write_bytes(b"not the exported model")
    with pytest.raises(ModelCardError, match="does not match files.onnx_sha256"):
        load_card(card_copy, verify_files=True)
    card_copy.write_text("{ not json")
    with pytest.raises(ModelCardError, match="not a readable JSON model card"):
        load_card(card_copy)


def test_parity_check_fails_loudly_outside_tolerance():
    probabilities = np.full((1, 4, 4, 2), 0.5, np.float32)
    labels = np.zeros((1, 4, 4), np.uint8)
    flipped = labels.copy()
    flipped[0, 0, :2] = 1
    result = parity.measure((probabilities, labels), (probabilities + 2e-4, flipped))
    assert result.max_abs_prob_diff == pytest.approx(2e-4, rel=1e-3) and result.label_agreement == 14 / 16
    with pytest.raises(parity.ParityError, match="onnx: max abs probability difference"):
        parity.check("onnx", result)
    with pytest.raises(parity.ParityError, match="tflite_fp16: label agreement 0.87500 is below 0.99"):
        parity.check("tflite_fp16", result)


def test_export_metrics_are_used_only_for_the_same_weights_size_scale_flips_restore_and_exposure(
        tiny_kvasir_run, tmp_path, capsys):
    from training.checkpoint import resolve_checkpoint
    from training.export import matching_metrics

    checkpoint = resolve_checkpoint(tiny_kvasir_run)
    evaluation = json.loads((tiny_kvasir_run / "eval_val.json").read_text())  # at 96 px, inference scale 1
    assert matching_metrics(tiny_kvasir_run / "eval_val.json", checkpoint, 96, 1.0, []) == evaluation
    assert matching_metrics(tiny_kvasir_run / "eval_val.json", checkpoint, 512, 1.0, []) is None
    assert matching_metrics(tiny_kvasir_run / "eval_val.json", checkpoint, 96, 1.5, []) is None
    assert matching_metrics(tiny_kvasir_run / "eval_val.json", checkpoint, 96, 1.0, ["horizontal"]) is None
    assert "test-time flips, restore rule or exposure normalisation" in capsys.readouterr().out
    bilinear = tmp_path / "bilinear.json"
    bilinear.write_text(json.dumps({**evaluation, "restore": "probabilities-bilinear"}))
    assert matching_metrics(bilinear, checkpoint, 96, 1.0, []) is None  # the card names labels-nearest
    normalised = tmp_path / "normalised.json"
    normalised.write_text(json.dumps({**evaluation, "exposure_target_mean": 110.0}))
    assert matching_metrics(normalised, checkpoint, 96, 1.0, []) is None  # the run did not normalise
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**evaluation, "weights_sha256": "0" * 64}))
    assert matching_metrics(other, checkpoint, 96, 1.0, []) is None


def test_cli_runs_as_a_module_and_names_a_missing_config(tmp_path):
    shown = subprocess.run([sys.executable, "-m", "training.export", "--help"], cwd=ROOT, capture_output=True,
                           text=True)
    assert shown.returncode == 0 and "--checkpoint_path" in shown.stdout, shown.stderr
    (tmp_path / "best.weights.h5").write_bytes(b"")
    failed = subprocess.run([sys.executable, "-m", "training.export", "--checkpoint_path", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True)
    assert failed.returncode != 0 and f"{tmp_path / 'config.json'}: missing" in failed.stderr


# --- inference scale: the graph runs the network on its input enlarged, and shrinks the result back ---

def test_network_input_size_is_the_scaled_input_rounded_to_the_output_stride():
    from training.checkpoint import network_input_size

    assert network_input_size((512, 512), 1.0, 16) == (512, 512)
    assert network_input_size((512, 512), 1.25, 16) == (640, 640)
    assert network_input_size((96, 128), 1.3, 16) == (128, 160)  # 124.8 -> 128, 166.4 -> 160
    assert network_input_size((32, 32), 0.25, 16) == (16, 16)  # 8 rounds to 0: at least one stride
    with pytest.raises(ValueError, match="inference_scale must be in"):
        network_input_size((512, 512), 0.0, 16)


def test_scaled_model_runs_the_network_on_the_enlarged_input_and_answers_at_input_size(tiny_kvasir_run,
                                                                                      fresh_images):
    import keras

    from training.checkpoint import load_model, resolve_checkpoint

    checkpoint = resolve_checkpoint(tiny_kvasir_run)
    scaled = load_model(checkpoint, (96, 96), inference_scale=1.5)
    network = load_model(checkpoint, (144, 144))
    images = fresh_images.astype(np.float32) / 127.5 - 1.0
    # training=False as in the export graph: with training=None, Keras 3.15 normalises the layers
    # that follow a Resizing layer with batch statistics.
    enlarged = keras.ops.image.resize(images, (144, 144))
    expected = keras.ops.image.resize(network(enlarged, training=False), (96, 96))
    logits = np.asarray(scaled(images, training=False))
    assert logits.shape == (3, 96, 96, 2)
    magnitude = np.abs(expected).max()  # the untrained network's logits are small: compare relatively
    np.testing.assert_allclose(logits / magnitude, np.asarray(expected) / magnitude, atol=1e-4)
    unscaled = np.asarray(load_model(checkpoint, (96, 96))(images, training=False))
    assert np.abs(logits - unscaled).max() > 0.05 * magnitude, "the scale must change what the network sees"


def test_flip_averaged_model_averages_the_probabilities_of_every_flipped_view(tiny_kvasir_run, fresh_images):
    from training.checkpoint import load_model, resolve_checkpoint

    checkpoint = resolve_checkpoint(tiny_kvasir_run)
    network = load_model(checkpoint, (96, 96))
    averaged = load_model(checkpoint, (96, 96), flips=["vertical", "horizontal"])
    images = fresh_images.astype(np.float32) / 127.5 - 1.0

    def probabilities(x: np.ndarray) -> np.ndarray:
        logits = np.asarray(network(x, training=False), np.float64)
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True)

    views = [(), (1,), (2,), (1, 2)]  # NHWC: rows (vertical flip), columns (horizontal flip)
    expected = np.mean([np.flip(probabilities(np.flip(images, axis)), axis) if axis else probabilities(images)
                        for axis in views], axis=0)
    got = np.exp(np.asarray(averaged(images, training=False), np.float64))
    assert got.shape == (3, 96, 96, 2)
    # The untrained network answers ~0.5 everywhere: compare the deviations from 0.5, relatively.
    magnitude = np.abs(expected - 0.5).max()
    np.testing.assert_allclose((got - 0.5) / magnitude, (expected - 0.5) / magnitude, atol=1e-2)
    unflipped = probabilities(images)
    assert np.abs(got - unflipped).max() > 0.05 * magnitude, "the flipped views must change the answer"
    with pytest.raises(ValueError, match="unknown test-time flip"):
        load_model(checkpoint, (96, 96), flips=["diagonal"])


@pytest.fixture(scope="module")
def scaled_export(tiny_kvasir_run, tmp_path_factory) -> dict:
    """ONNX export at inference scale 1.5 averaged over horizontal flips, its card carrying the
    checkpoint's evaluation of that same graph."""
    from training import evaluate, export

    work = tmp_path_factory.mktemp("scaled")
    graph = ["--input-size", "96", "--inference-scale", "1.5", "--test-time-flips", "horizontal"]
    evaluate.main(["--checkpoint_path", str(tiny_kvasir_run), *graph,
                   "--limit", "2", "--split", "val", "--output", str(work / "eval.json"), "--no-progress"])
    args = export.parse_args(["--checkpoint_path", str(tiny_kvasir_run), "--output_dir", str(work / "out"),
                              *graph, "--onnx", "--name", "scaled", "--metrics", str(work / "eval.json")])
    return {**export.export(args), "evaluation": json.loads((work / "eval.json").read_text())}


def test_scaled_export_keeps_the_interface_and_its_card_records_the_scale(scaled_export):
    card = load_card(scaled_export["card"], verify_files=True)
    assert card.input_size == (96, 96)
    assert card.architecture.inference_scale == 1.5 and card.architecture.network_input_size == (144, 144)
    assert card.architecture.test_time_flips == ["horizontal"]
    assert "--inference-scale 1.5 --test-time-flips horizontal" in card.training.reproduce
    assert card.metrics is not None and card.metrics.inference_scale == 1.5
    assert card.metrics.test_time_flips == ["horizontal"]
    assert card.metrics.dice == scaled_export["evaluation"]["dice"]
    assert scaled_export["export_parity"]["onnx"]["label_agreement"] >= parity.TOLERANCES["onnx"][1]


def test_scaled_checkpoint_and_its_onnx_export_score_the_same(scaled_export):
    from training import evaluate

    target = evaluate.onnx_target(Path(scaled_export["files"]["onnx"]), Path(scaled_export["card"]))
    assert target.input_size == (96, 96) and target.inference_scale == 1.5
    assert target.test_time_flips == ["horizontal"]
    onnx_scores = evaluate.evaluate(target, get_dataset("kvasir", split="val"), limit=2, progress=False)
    assert onnx_scores["inference_scale"] == 1.5 and onnx_scores["test_time_flips"] == ["horizontal"]
    checkpoint_confusion = np.array(scaled_export["evaluation"]["confusion_matrix"])
    onnx_confusion = np.array(onnx_scores["confusion_matrix"])
    # Each pixel whose label differs moves two cells by one. The bar is the export's own ONNX parity one
    # (labels agree on >= 99.9 %): this untrained model sits near ties, where Keras and ONNX Runtime round
    # apart by CPU (0.018 % of pixels on an AVX2-only EPYC); a wrong scale or flip moves far more.
    moved_pixels = np.abs(checkpoint_confusion - onnx_confusion).sum() / 2
    assert moved_pixels <= (1 - parity.TOLERANCES["onnx"][1]) * onnx_confusion.sum()
