"""Every upload of the fuzz corpus gets its documented status and JSON error, never a 5xx, and the next
good request still succeeds."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.reliability.corpus import encode, exif_oriented_jpeg, sample_pixels, uploads
from tests.support.service import ServiceProcess

MAX_BODY_BYTES = 1024 * 1024
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def client(models_dir, tmp_path_factory):
    server = ServiceProcess(models_dir, tmp_path_factory.mktemp("fuzz") / "service.log",
                            env={"SEG_LIMITS__MAX_BODY_BYTES": str(MAX_BODY_BYTES)}).start()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client
    assert server.process.poll() is None, f"the service died:\n{server.logs()}"
    server.stop()


def problem_with(upload, response: httpx.Response) -> str | None:
    """What is wrong with the answer to `upload`, or None."""
    if response.status_code != upload.status:
        return f"status {response.status_code}, expected {upload.status}: {response.text[:200]}"
    if upload.status == 200:
        if response.headers["content-type"] != "image/png":
            return f"content type {response.headers['content-type']}"
        mask = Image.open(io.BytesIO(response.content))
        if mask.mode != "P" or mask.size != upload.size:
            return f"mask {mask.mode} {mask.size}, expected P {upload.size}"
        return None
    if not response.headers.get("content-type", "").startswith("application/json"):
        return f"error is not JSON: {response.headers.get('content-type')} {response.text[:200]}"
    error = response.json().get("error", {})
    if error.get("code") != upload.code or not error.get("message"):
        return f"error {error}, expected code {upload.code!r} and a message"
    return None


def test_each_upload_gets_its_documented_answer_and_the_next_good_request_succeeds(client, kvasir_images,
                                                                                    camvid_image):
    good = encode(Image.fromarray(sample_pixels(kvasir_images[0])), "PNG")
    problems = []
    corpus = uploads(kvasir_images[0], camvid_image, MAX_BODY_BYTES)
    for upload in corpus:
        problem = problem_with(upload, client.post("/segment", **upload.request()))
        if problem:
            problems.append(f"{upload.name}: {problem}")
        if upload.status == 200:
            continue  # that was a good request itself
        after = client.post("/segment", content=good, headers={"Content-Type": "image/png"})
        if after.status_code != 200:
            problems.append(f"good request after {upload.name}: {after.status_code} {after.text[:200]}")
    assert not problems, "\n".join(problems)
    assert {upload.status for upload in corpus} == {200, 400, 404, 413, 415, 422}
    metrics = client.get("/metrics").text
    assert 'route="/segment",status="5' not in metrics, "a corpus upload was answered with a 5xx"


def test_every_exif_orientation_gives_the_mask_of_the_upright_image(client, kvasir_images):
    pixels = sample_pixels(kvasir_images[0])
    for orientation in range(1, 9):
        tagged = exif_oriented_jpeg(pixels, orientation)
        upright = ImageOps.exif_transpose(Image.open(io.BytesIO(tagged)))  # what a viewer shows
        masks = [
            np.asarray(Image.open(io.BytesIO(client.post("/segment", content=body,
                                                         headers={"Content-Type": kind}).content)))
            for body, kind in ((tagged, "image/jpeg"), (encode(upright, "PNG"), "image/png"))
        ]
        assert masks[0].shape == (upright.height, upright.width), f"orientation {orientation}"
        assert np.array_equal(masks[0], masks[1]), f"orientation {orientation}"
