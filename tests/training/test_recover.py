"""training.recover: a shipped ONNX file's weights back into a Keras checkpoint that fine-tunes."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

from modelcard.card import load_card  # noqa: E402
from training import export  # noqa: E402
from training.checkpoint import FOLDED_BATCHNORM, resolve_checkpoint  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.datasets import data_root  # noqa: E402
from training.model import build_deeplab  # noqa: E402
from training.model.blocks import all_layers, freeze_batchnorm  # noqa: E402
from training.recover import load_onnx_weights, recover  # noqa: E402
from training.train import train  # noqa: E402

SIZE = 128
ALPHA = 0.35


def tiny_network(**options) -> keras.Model:
    return build_deeplab(2, input_size=(SIZE, SIZE), backbone_options={"alpha": ALPHA}, **options)


def batch_norms(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    return [layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny polyp model with batch-norm statistics far from the defaults (so folding them matters),
    exported with a test-time flip as the shipped polyp model is."""
    if not (data_root() / "kvasir-seg").is_dir():
        pytest.skip(f"Kvasir-SEG not found under {data_root()}")
    directory = tmp_path_factory.mktemp("recover")
    run = directory / "run"
    run.mkdir()
    config = {**TrainConfig(run_name="polyp", dataset="kvasir", backbone_options={"alpha": ALPHA}).to_dict(),
              "num_classes": 2, "classes": ["background", "polyp"], "palette": [[0, 0, 0], [255, 255, 255]],
              "ignore_index": None}
    (run / "config.json").write_text(json.dumps(config))
    model = tiny_network()
    rng = np.random.default_rng(0)
    for norm in batch_norms(model):
        channels = norm.gamma.shape[0]
        norm.set_weights([rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.2, channels),
                          rng.normal(0, 0.2, channels), rng.uniform(0.5, 2.0, channels)])
    model.save_weights(run / "best.weights.h5")
    export.main(["--checkpoint_path", str(run), "--output_dir", str(directory / "export"), "--onnx",
                 "--input-size", str(SIZE), "--name", "polyp", "--test-time-flips", "horizontal",
                 "--parity-images", "1"])
    return load_card(directory / "export" / "polyp.json")


def test_the_recovered_checkpoint_answers_as_the_onnx_file_and_says_where_it_came_from(exported, tmp_path):
    result = recover(exported, tmp_path / "recovered", parity_images=2, command="python -m training.recover ...")
    assert result["max_abs_prob_diff"] <= 1e-4 and result["label_agreement"] >= 0.999 and result["images"] == 2

    checkpoint = resolve_checkpoint(tmp_path / "recovered")
    network = tiny_network()
    network.load_weights(checkpoint.weights_path)
    for layer in (network.get_layer("aspp_projection_conv"), network.get_layer("decoder_sep1_pointwise_conv")):
        kernel = layer.get_weights()[0]  # [kh, kw, in, out]: each output channel back at He-normal size
        rms = np.sqrt(np.mean(np.square(kernel.reshape(-1, kernel.shape[-1])), axis=0))
        np.testing.assert_allclose(rms, np.sqrt(2 / np.prod(kernel.shape[:3])), rtol=1e-3)
    assert checkpoint.config["batchnorm"] == FOLDED_BATCHNORM
    assert checkpoint.config["recovered_from"]["sha256"] == exported.files.onnx_sha256
    # reproducing it: the shipped model's whole recipe, then this command
    commands = [*exported.training.reproduce.split(" && "), "python -m training.recover ..."]
    assert checkpoint.training_commands == commands


def test_a_network_of_another_shape_is_refused(exported):
    graph = onnx.load(str(exported.onnx_path))
    with pytest.raises(ValueError, match="differ"):
        load_onnx_weights(tiny_network(decoder=False), graph)


def test_fine_tuning_a_folded_checkpoint_without_frozen_batchnorm_is_refused(exported, tmp_path):
    recover(exported, tmp_path / "recovered", parity_images=1, command="recover")
    config = TrainConfig(run_name="tuned", dataset="kvasir", backbone_options={"alpha": ALPHA},
                         checkpoint_dir=str(tmp_path), init_weights=str(tmp_path / "recovered"))
    with pytest.raises(ValueError, match="--freeze-batchnorm true"):
        train(config)


def test_frozen_batchnorm_trains_the_convolutions_and_keeps_every_statistic():
    model = tiny_network(dropout=0.0)
    freeze_batchnorm(model)
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    labels = rng.integers(0, 2, (2, SIZE, SIZE))
    before = [[w.copy() for w in norm.get_weights()] for norm in batch_norms(model)]
    kernel = model.get_layer("classifier").get_weights()[0].copy()
    np.testing.assert_allclose(model(images, training=True), model(images, training=False), atol=1e-5)

    model.train_on_batch(images, labels)
    for norm, weights in zip(batch_norms(model), before):
        for now, then in zip(norm.get_weights(), weights):
            np.testing.assert_array_equal(now, then)
    assert not np.array_equal(model.get_layer("classifier").get_weights()[0], kernel)
