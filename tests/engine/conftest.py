"""A real exported model for the engine tests, and stand-ins for the host a plan is built on.

``exported_model`` prefers a model shipped in ``engines/``; without one it trains nothing but
exports a tiny untrained DeepLabv3+ (MobileNetV2 alpha 0.35, 64x64) with the real exporter, so
the FP16 conversion and the CLI always see a graph exactly as the exporter writes it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from modelcard.card import load_card
from service.backends.tensorrt.sidecar import BatchProfile, Platform, Sidecar

PROJECT_ROOT = Path(__file__).resolve().parents[2]
H200 = Platform(tensorrt_version="10.13.3.9", gpu_name="NVIDIA H200", compute_capability="9.0")


def shipped_card() -> Path | None:
    for card in sorted((PROJECT_ROOT / "engines").glob("*.json")):
        if not card.name.endswith(".plan.json") and card.with_suffix(".onnx").is_file():
            return card
    return None


def export_tiny_model(directory: Path) -> Path:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from training import export
    from training.config import TrainConfig
    from training.model import build_deeplab

    run = directory / "run"
    run.mkdir(parents=True)
    config = {**TrainConfig(run_name="tiny", backbone_options={"alpha": 0.35}).to_dict(),
              "num_classes": 2, "classes": ["background", "polyp"], "palette": [[0, 0, 0], [255, 0, 0]],
              "ignore_index": None}
    (run / "config.json").write_text(json.dumps(config))
    model = build_deeplab(2, backbone="mobilenetv2", input_size=(64, 64), backbone_options={"alpha": 0.35})
    model.save_weights(run / "best.weights.h5")
    export.main(["--checkpoint_path", str(run), "--output_dir", str(directory / "export"),
                 "--onnx", "--input-size", "64", "--name", "tiny", "--parity-images", "2"])
    return directory / "export" / "tiny.json"


@pytest.fixture(scope="session")
def exported_card_path(tmp_path_factory) -> Path:
    """Card path of a real exported model (ONNX beside it), in a private copy tests may modify."""
    source = shipped_card() or export_tiny_model(tmp_path_factory.mktemp("export"))
    copy = tmp_path_factory.mktemp("model")
    for path in (source, source.with_suffix(".onnx")):
        shutil.copy2(path, copy / path.name)
    return copy / source.name


@pytest.fixture(scope="session")
def exported_card(exported_card_path):
    return load_card(exported_card_path)


@pytest.fixture(scope="session")
def real_images(exported_card):
    """8 validation images of the exported model's dataset, letterboxed to its input size."""
    from engine_builder.checks import sample_images
    from training.datasets import data_root

    try:
        return sample_images(exported_card.training.recipe, 8, exported_card.input_size)
    except FileNotFoundError as error:
        pytest.skip(f"real images not found ({error}); set DEEPLAB_DATA_ROOT (now {data_root()})")


@pytest.fixture
def h200() -> Platform:
    """The host the sample plans were 'built' on."""
    return H200


@pytest.fixture
def make_sidecar():
    """Sidecars as build_engine.py writes them, built on ``H200`` unless told otherwise."""
    return _make_sidecar


PASSED = {"max_abs_prob_diff": 0.01, "label_agreement": 0.999, "images": 16,
          "reference": "onnxruntime:CPUExecutionProvider"}


def _make_sidecar(platform: Platform = H200, *, precision: str = "fp16", onnx_sha256: str = "a" * 64,
                  max_batch: int = 32, parity: dict | None = PASSED) -> Sidecar:
    return Sidecar(platform=platform, precision=precision, parity=parity,
                   fp16_mode="builder-flag" if precision == "fp16" else None,
                   profile=BatchProfile(1, 8, max_batch, 512, 512), workspace_mb=2048,
                   onnx_path="engines/polyp.onnx", onnx_sha256=onnx_sha256,
                   model_card={"name": "polyp"}, built_at="2026-11-30T12:00:00Z")
