"""DeepLabv3+ model: shapes for every backbone and output stride, argument
checks, size budget, gradient checkpointing, mixed precision, JAX backend."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from training.model import BACKBONES, build_deeplab
from training.model.blocks import RecomputableBlock, all_layers

SIZE = 64  # smallest size that is a multiple of both output strides with a >1 pixel ASPP map
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _feature_shapes(model):
    """(low-level, high-level) feature shapes, read where the head consumes them."""
    low = model.get_layer("decoder_low_level_conv").input.shape
    high = model.get_layer("aspp_1x1_conv").input.shape
    return low, high


@pytest.mark.parametrize("output_stride", [16, 8])
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_output_and_feature_shapes(backbone, output_stride):
    model = build_deeplab(5, backbone=backbone, input_size=(SIZE, SIZE), output_stride=output_stride)
    low, high = _feature_shapes(model)
    assert tuple(low[1:3]) == (SIZE // 4, SIZE // 4)
    assert tuple(high[1:3]) == (SIZE // output_stride, SIZE // output_stride)
    images = np.random.default_rng(0).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32")
    logits = keras.ops.convert_to_numpy(model(images, training=False))
    assert logits.shape == (2, SIZE, SIZE, 5)
    assert logits.dtype == np.float32
    assert np.isfinite(logits).all()


def test_non_square_input_and_plain_deeplabv3():
    model = build_deeplab(3, input_size=(96, 64), decoder=False, aspp_rates=(3, 6, 12))
    assert model.output_shape == (None, 96, 64, 3)
    with pytest.raises(ValueError):
        model.get_layer("decoder_low_level_conv")


def test_default_mobilenetv2_fits_the_onnx_size_budget():
    # 3.5 M float32 parameters ~ 14 MB of ONNX weights (the card's ~15 MB budget).
    params = build_deeplab(11, input_size=(SIZE, SIZE)).count_params()
    assert 2_000_000 < params < 3_500_000


def test_width_multiplier_scales_mobilenetv2():
    narrow = build_deeplab(2, input_size=(SIZE, SIZE), backbone_options={"alpha": 0.5})
    default = build_deeplab(2, input_size=(SIZE, SIZE))
    assert narrow.count_params() < default.count_params()
    assert narrow.get_layer("decoder_low_level_conv").input.shape[-1] == 16  # 24 * 0.5 -> 16


def test_weights_transfer_between_input_sizes():
    """Export rebuilds the trained model at another size and loads the same weights."""
    small = build_deeplab(2, input_size=(SIZE, SIZE))
    large = build_deeplab(2, input_size=(128, 96))
    large.set_weights(small.get_weights())


def test_full_model_save_and_load_round_trip(tmp_path):
    model = build_deeplab(2, input_size=(32, 32), gradient_checkpointing=True)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    images = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(images)), keras.ops.convert_to_numpy(model(images)))
    assert all(layer.recompute for layer in loaded.layers if isinstance(layer, RecomputableBlock))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backbone": "resnet50"}, "valid backbones: mobilenetv2, xception41, xception65, xception71"),
        ({"output_stride": 32}, "output_stride must be one of (8, 16)"),
        ({"output_stride": 4}, "output_stride must be one of (8, 16)"),
        ({"aspp_rates": (6, 12)}, "aspp_rates must be three positive integers"),
        ({"aspp_rates": (6, 0, 18)}, "aspp_rates must be three positive integers"),
        ({"aspp_rates": "6,12,18"}, "aspp_rates must be three positive integers"),
        ({"num_classes": 1}, "num_classes must be an integer >= 2"),
        ({"input_size": (100, 64)}, "must be a multiple of output_stride 16"),
        ({"input_size": (64,)}, "input_size must be (height, width)"),
        ({"dropout": 1.0}, "dropout must be in [0, 1)"),
        ({"bn_momentum": 1.5}, "bn_momentum must be in (0, 1)"),
        ({"backbone_options": {"depth": 3}}, "does not accept backbone_options ['depth']; accepted: ['alpha']"),
        ({"backbone_options": {"alpha": -1}}, "alpha must be a positive number"),
        ({"backbone": "xception65", "backbone_options": {"alpha": 1.0}}, "accepted: none"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, message):
    arguments = {"num_classes": 3, "input_size": (SIZE, SIZE), **kwargs}
    with pytest.raises(ValueError) as error:
        build_deeplab(**arguments)
    assert message in str(error.value)


def test_sync_batchnorm_only_changes_normalisation():
    model = build_deeplab(2, input_size=(SIZE, SIZE), sync_batchnorm=True, bn_momentum=0.95)
    norms = [layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == 0.95 for layer in norms)
    expected = keras.backend.backend() == "tensorflow"
    assert all(layer.synchronized == expected for layer in norms)


def _train_one_step(model, images, labels):
    model.compile(
        optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.CategoricalCrossentropy(from_logits=True)
    )
    model.fit(images, labels, batch_size=len(images), epochs=1, verbose=0)
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def test_gradient_checkpointing_recomputes_blocks_with_identical_results(monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32")
    labels = np.eye(3, dtype="float32")[rng.integers(0, 3, (2, SIZE, SIZE))]
    plain = build_deeplab(3, input_size=(SIZE, SIZE), dropout=0.0)
    checkpointed = build_deeplab(3, input_size=(SIZE, SIZE), dropout=0.0, gradient_checkpointing=True)
    initial_weights = plain.get_weights()
    checkpointed.set_weights(initial_weights)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(checkpointed(images, training=True)),
        keras.ops.convert_to_numpy(plain(images, training=True)),
        atol=1e-5,
    )

    blocks = [layer for layer in checkpointed.layers if isinstance(layer, RecomputableBlock)]
    block_bodies = {layer.block.name for layer in blocks}
    traced_block_calls = []
    original = keras.Model.stateless_call
    monkeypatch.setattr(
        keras.Model,
        "stateless_call",
        lambda self, *a, **k: traced_block_calls.append(self.name) or original(self, *a, **k),
    )
    after_plain = _train_one_step(plain, images, labels)
    assert not block_bodies & set(traced_block_calls)
    after_checkpointed = _train_one_step(checkpointed, images, labels)
    block_calls = [name for name in traced_block_calls if name in block_bodies]
    assert set(block_calls) == block_bodies
    if keras.backend.backend() == "tensorflow":
        # tf.recompute_grad traces each block once forward and once more for its gradient.
        assert len(block_calls) == 2 * len(blocks)
    # Batch-norm statistics are updated once, not once per recompute: a double
    # update moves them ~1.9x as far (relative mismatch ~0.9). Gradients match:
    # a block whose gradient were lost or doubled would be off by 1.0. The
    # tolerances sit far from both: multithreaded CPU reductions are not
    # bit-reproducible, and on JAX a gamma's gradient (a sum with heavy
    # cancellation) was seen to differ by up to 7% between identical runs.
    trainable = {weight.path for weight in plain.trainable_weights}
    for weight, initial, expected, actual in zip(plain.weights, initial_weights, after_plain, after_checkpointed):
        expected_update, actual_update = expected - initial, actual - initial
        mismatch = np.linalg.norm(actual_update - expected_update)
        tolerance = 0.25 if weight.path in trainable else 0.05
        assert mismatch <= tolerance * np.linalg.norm(expected_update) + 1e-5, weight.path


def test_logits_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_deeplab(2, input_size=(SIZE, SIZE))
        conv_dtype = model.get_layer("classifier").compute_dtype
        logits = model(np.zeros((1, SIZE, SIZE, 3), "float32"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert conv_dtype == "float16"
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"


JAX_SELECTION = "mobilenetv2 or gradient_checkpointing or mixed_precision or sync_batchnorm or bad_arguments"


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="already running on the JAX backend")
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed in this environment")
def test_same_tests_pass_on_the_jax_backend():
    """Rerun the backend-sensitive tests of this file with KERAS_BACKEND=jax."""
    command = [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "--noconftest",
               "-k", JAX_SELECTION]
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
