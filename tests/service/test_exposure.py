"""A card that names exposure normalisation (``input.exposure``) is served through it: `/segment`
answers what the ONNX file gives on the normalised letterbox, which differs from the plain one."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from modelcard.card import load_card
from modelcard.geometry import crop, letterbox, resize_labels
from tests.support.service import ServiceProcess, run_onnx
from training.datasets.photometric import adjust_gamma

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
TARGET_MEAN = 140.0


@pytest.fixture(scope="module")
def normalising_card(segmentation_model, tmp_path_factory):
    """`segmentation_model` in a models directory of its own, its card naming a target brightness."""
    directory = tmp_path_factory.mktemp("exposure-model")
    for path in segmentation_model.model_files:
        (directory / path.name).symlink_to(path.resolve())
    card = json.loads(segmentation_model.path.read_text())
    card["input"]["exposure"] = {"method": "gamma-to-mean", "target_mean": TARGET_MEAN}
    (directory / segmentation_model.path.name).write_text(json.dumps(card))
    return load_card(directory / segmentation_model.path.name)


@pytest.fixture(scope="module")
def client(normalising_card, tmp_path_factory):
    server = ServiceProcess(normalising_card.path.parent, tmp_path_factory.mktemp("exposure") / "service.log").start()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client
    server.stop()


def test_a_dark_image_is_segmented_after_its_exposure_is_normalised(client, normalising_card, kvasir_images):
    original = np.asarray(Image.open(kvasir_images[0]).convert("RGB"))
    dark = np.rint(adjust_gamma(original, 2.2)).astype(np.uint8)
    body = io.BytesIO()
    Image.fromarray(dark).save(body, format="PNG")
    response = client.post(f"/segment?model={normalising_card.name}", content=body.getvalue(),
                           headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    served = np.asarray(Image.open(io.BytesIO(response.content)))

    def answer(exposure_target_mean):
        canvas, placement = letterbox(dark, normalising_card.input_size, normalising_card.input.resize.pad_value,
                                      exposure_target_mean)
        return resize_labels(crop(run_onnx(normalising_card, canvas), placement), dark.shape[:2])

    normalised, plain = answer(TARGET_MEAN), answer(None)
    assert not np.array_equal(normalised, plain), "the normalisation must change this model's answer"
    assert (served == normalised).mean() > 0.999  # the same pixels, up to PNG-decoder rounding at most
    assert (served == plain).mean() < (served == normalised).mean()
