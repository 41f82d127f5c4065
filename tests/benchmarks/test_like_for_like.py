"""The benchmark compares like with like: the naive reference server (whose per-request work is also the in-process
pipeline) answers the same mask as the service's pipeline, and the raw loop runs the same session on the same
letterboxed images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from benchmarks.naive_server import create_app
from benchmarks.raw import run_in_process, run_raw, session_for
from modelcard.geometry import crop, letterbox, resize_labels
from service.backends.onnx import session_options_for
from service.imaging import decode_image
from service.settings import OnnxSettings
from tests.support.service import run_onnx

pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")]


def test_naive_server_answers_the_services_mask(segmentation_model, kvasir_images):
    from fastapi.testclient import TestClient  # imported under the warning filter above

    card = segmentation_model
    with TestClient(create_app(str(card.path))) as client:
        for path in kvasir_images[:2]:
            data = path.read_bytes()
            response = client.post("/segment", content=data, headers={"Content-Type": "image/jpeg"})
            assert response.status_code == 200
            mask = Image.open(io.BytesIO(response.content))
            pixels = np.asarray(decode_image(data, 10**9))
            canvas, placement = letterbox(pixels, card.input_size)
            expected = resize_labels(crop(run_onnx(card, canvas), placement), pixels.shape[:2])
            assert mask.mode == "P" and np.array_equal(np.asarray(mask), expected)


def test_raw_loop_runs_every_request_on_every_client(segmentation_model, kvasir_images):
    card = segmentation_model
    canvases = [letterbox(np.asarray(Image.open(path).convert("RGB")), card.input_size)[0]
                for path in kvasir_images[:2]]
    result = run_raw(session_for(card), card, canvases, clients=3, requests=7)
    assert len(result.latencies_s) == 7 and result.statuses == {200: 7}
    assert result.throughput > 0 and result.percentile_ms(50) <= result.percentile_ms(95)


def test_raw_loop_session_has_the_services_default_session_options(segmentation_model):
    options = session_for(segmentation_model).get_session_options()
    service = session_options_for(OnnxSettings())
    spinning = "session.intra_op.allow_spinning"
    assert options.get_session_config_entry(spinning) == service.get_session_config_entry(spinning) == "0"
    assert (options.intra_op_num_threads, options.inter_op_num_threads, options.execution_mode) == \
        (service.intra_op_num_threads, service.inter_op_num_threads, service.execution_mode)


def test_in_process_pipeline_runs_every_request_from_the_encoded_bytes(segmentation_model, kvasir_images):
    bodies = [path.read_bytes() for path in kvasir_images[:2]]
    result = run_in_process(session_for(segmentation_model), segmentation_model, bodies, clients=2, requests=5)
    assert len(result.latencies_s) == 5 and result.statuses == {200: 5}
