"""`--precision int8` through a real server: the model is served from its INT8 file, and says so."""

from __future__ import annotations

import io
import shutil

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from modelcard.card import load_card
from modelcard.geometry import crop, letterbox, resize_labels
from service.imaging import decode_image
from training.quantize import main as quantize_main


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
