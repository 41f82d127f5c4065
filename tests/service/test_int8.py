"""`--precision int8` through a real server: the model is served from its INT8 file, and says so."""

from __future__ import annotations

import io
import json
import platform
import shutil
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from modelcard.card import load_card
from modelcard.geometry import crop, letterbox, resize_labels
from service.backends import onnx as onnx_backend
from service.imaging import decode_image
from training.quantize import main as quantize_main

ENGINES = Path(__file__).resolve().parents[2] / "engines"


@pytest.fixture(scope="module")
def int8_models(segmentation_model, tmp_path_factory):
    """A models directory with the segmentation model and an INT8 variant quantized for this test."""
    directory = tmp_path_factory.mktemp("int8-models")
    shutil.copy(segmentation_model.path, directory / segmentation_model.path.name)
    (directory / segmentation_model.files.onnx).symlink_to(segmentation_model.onnx_path.resolve())
    quantize_main(["--card", str(directory / segmentation_model.path.name), "--calibration-images", "2"])
    return directory


def test_the_service_serves_the_int8_file_when_asked(service_factory, int8_models, segmentation_model,
                                                     kvasir_images):
    card = load_card(int8_models / segmentation_model.path.name)
    server = service_factory(["--backend", "onnx-cpu", "--precision", "int8"], models=int8_models)
    data = kvasir_images[0].read_bytes()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        models = {entry["name"]: entry for entry in client.get("/v1/models").json()["models"]}
        response = client.post("/segment", params={"model": card.name}, content=data,
                               headers={"Content-Type": "image/jpeg"})
    assert models[card.name]["precision"] == "int8" and models[card.name]["backend"] == "onnx-cpu"
    assert response.status_code == 200, response.text
    served = np.asarray(Image.open(io.BytesIO(response.content)))

    pixels = np.asarray(decode_image(data, 10**9))
    canvas, placement = letterbox(pixels, card.input_size)
    session = ort.InferenceSession(str(card.onnx_file("int8")), providers=["CPUExecutionProvider"])
    labels = session.run([card.outputs.labels.name], {card.input.name: canvas[None]})[0][0]
    expected = resize_labels(crop(labels, placement), pixels.shape[:2])
    assert (served == expected).mean() > 0.9999, "the served mask is not the INT8 model's"


def full_range_card(card, directory: Path):
    """`card` as written before 7-bit weights (its INT8 recipe without `reduce_range`), loaded from `directory`."""
    data = card.to_json()
    data["quantization"]["onnx_int8"].pop("reduce_range")
    path = directory / card.path.name
    path.write_text(json.dumps(data))
    return load_card(path)


@pytest.mark.skipif(platform.machine().lower() not in onnx_backend.X86_MACHINES, reason="the warning is x86's")
def test_a_full_range_int8_file_on_a_cpu_without_vnni_is_warned_about(monkeypatch, tmp_path):
    card = load_card(ENGINES / "polyp.json")
    monkeypatch.setattr(onnx_backend, "int8_instructions", lambda: [])
    assert onnx_backend.int8_saturation_warning(card) is None  # the bundled file keeps to 7 bits
    old_card = full_range_card(card, tmp_path)
    warning = onnx_backend.int8_saturation_warning(old_card)
    assert warning and "no VNNI" in warning and f"--card {old_card.path}" in warning
    monkeypatch.setattr(onnx_backend, "int8_instructions", lambda: ["avx512_vnni"])
    assert onnx_backend.int8_saturation_warning(old_card) is None
