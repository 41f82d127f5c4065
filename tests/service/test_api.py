"""The HTTP API of a real server process on real images: masks, RLE, CRF, EXIF, limits, models, probes, docs."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from modelcard.geometry import crop, letterbox, resize_labels
from service.imaging import decode_image
from tests.support.service import ServiceProcess, run_onnx

pycocotools_mask = pytest.importorskip("pycocotools.mask", reason="pycocotools (dev dependency) decodes the RLE")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

LIMITS = {"SEG_LIMITS__MAX_BODY_BYTES": str(2 * 1024 * 1024), "SEG_LIMITS__MAX_IMAGE_PIXELS": str(4_000_000)}


@pytest.fixture(scope="module")
def service(models_dir, tmp_path_factory):
    """One server for the module, with small limits so that each one can be hit cheaply."""
    server = ServiceProcess(models_dir, tmp_path_factory.mktemp("api") / "service.log", env=LIMITS).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(service):
    with httpx.Client(base_url=service.url, timeout=60) as client:
        yield client


def segment(client, data: bytes, content_type: str = "image/jpeg", multipart: bool = True, **params):
    if multipart:
        return client.post("/segment", params=params, files={"image": ("upload", data, content_type)})
    return client.post("/segment", params=params, content=data, headers={"Content-Type": content_type})


def png_mask(response: httpx.Response) -> tuple[Image.Image, np.ndarray]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    return image, np.asarray(image)


def expected_mask(card, data: bytes) -> np.ndarray:
    """What the service must answer: the same decode and letterbox, the ONNX file run directly."""
    pixels = np.asarray(decode_image(data, 10**9))
    canvas, placement = letterbox(pixels, card.input_size)
    return resize_labels(crop(run_onnx(card, canvas), placement), pixels.shape[:2])


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    return error


def test_png_masks_have_the_original_size_the_palette_and_match_the_model(client, cards, kvasir_images):
    for name, card in cards.items():
        for path in kvasir_images:
            data = path.read_bytes()
            response = segment(client, data, model=name)
            image, mask = png_mask(response)
            with Image.open(path) as original:
                assert image.size == original.size
            assert image.mode == "P"
            palette = image.getpalette()
            assert palette[: 3 * card.num_classes] == [c for colour in card.palette for c in colour]
            assert np.array_equal(mask, expected_mask(card, data)), f"{name} on {path.name}"
            assert response.headers["x-model"] == name and response.headers["x-backend"] == "onnx-cpu"


def test_raw_body_and_multipart_give_the_same_mask(client, camvid_image):
    data = camvid_image.read_bytes()
    raw = png_mask(segment(client, data, "image/png", multipart=False))[1]
    form = png_mask(segment(client, data, "image/png"))[1]
    assert raw.shape == (360, 480) and np.array_equal(raw, form)


def test_rle_decodes_to_exactly_the_png_mask(client, cards, camvid_image, kvasir_images):
    for name, card in cards.items():
        for path in (camvid_image, kvasir_images[0]):
            data = path.read_bytes()
            mask = png_mask(segment(client, data, model=name))[1]
            response = segment(client, data, model=name, format="rle")
            assert response.status_code == 200 and response.headers["content-type"] == "application/json"
            document = response.json()
            height, width = mask.shape
            assert (document["model"], document["width"], document["height"]) == (name, width, height)
            assert [entry["id"] for entry in document["classes"]] == sorted(int(v) for v in np.unique(mask))
            rebuilt = np.full(mask.shape, 255, np.uint8)
            for entry in document["classes"]:
                assert entry["name"] == card.class_names[entry["id"]]
                assert entry["rle"]["size"] == [height, width]
                binary = pycocotools_mask.decode({"size": entry["rle"]["size"], "counts": entry["rle"]["counts"]})
                assert entry["area"] == int(binary.sum())
                rebuilt[binary == 1] = entry["id"]
            assert np.array_equal(rebuilt, mask)


def test_crf_changes_boundaries_and_keeps_the_size(client, cards, kvasir_images, camvid_image):
    # A boundary needs two classes: use the first model and image whose mask has some.
    for name in sorted(cards):
        for path in (*kvasir_images, camvid_image):
            data = path.read_bytes()
            plain = png_mask(segment(client, data, model=name))[1]
            if len(np.unique(plain)) > 1:
                break
        else:
            continue
        break
    else:
        pytest.skip("every model predicts a single class on every test image (untrained models): no boundary")
    response = segment(client, data, model=name, crf="true")
    refined = png_mask(response)[1]
    assert refined.shape == plain.shape
    assert (refined != plain).any(), "CRF changed nothing"
    assert "crf;dur=" in response.headers["server-timing"]


def test_exif_rotated_input_gives_the_rotated_mask(client, segmentation_model, kvasir_images):
    with Image.open(kvasir_images[0]) as image:
        pixels = np.asarray(image.convert("RGB"))
    upright = io.BytesIO()
    Image.fromarray(np.rot90(pixels, k=-1)).save(upright, format="PNG")
    tagged = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    Image.fromarray(pixels).save(tagged, format="PNG", exif=exif)
    from_tag = png_mask(segment(client, tagged.getvalue(), "image/png", model=segmentation_model.name))[1]
    from_upright = png_mask(segment(client, upright.getvalue(), "image/png", model=segmentation_model.name))[1]
    assert from_tag.shape == (pixels.shape[1], pixels.shape[0])
    assert np.array_equal(from_tag, from_upright)


def test_server_timing_and_headers(client, kvasir_images):
    response = segment(client, kvasir_images[0].read_bytes())
    stages = [part.split(";")[0].strip() for part in response.headers["server-timing"].split(",")]
    assert stages == ["decode", "preprocess", "queue", "infer", "encode"]
    assert response.headers["x-model"] == client.get("/v1/models").json()["default"]


def test_grey_and_16_bit_images_are_segmented_not_rejected(client):
    grey = io.BytesIO()
    Image.fromarray(np.linspace(0, 65535, 50 * 70, dtype=np.uint16).reshape(50, 70)).save(grey, format="PNG")
    image, _ = png_mask(segment(client, grey.getvalue(), "image/png"))
    assert image.size == (70, 50)


def test_each_limit_answers_its_status_with_a_json_error(client, kvasir_images):
    jpeg = kvasir_images[0].read_bytes()
    assert_error(client.post("/segment", content=b"\0" * (2 * 1024 * 1024 + 1),
                             headers={"Content-Type": "image/png"}), 413, "payload_too_large")
    big = io.BytesIO()
    Image.new("L", (2500, 2000)).save(big, format="PNG")  # 5 MP in a few KB
    assert_error(segment(client, big.getvalue(), "image/png"), 413, "payload_too_large")
    assert_error(segment(client, jpeg, "text/plain", multipart=False), 415, "unsupported_media_type")
    assert_error(segment(client, jpeg, "application/pdf"), 415, "unsupported_media_type")
    assert_error(segment(client, jpeg[: len(jpeg) // 3]), 400, "invalid_image")
    assert_error(segment(client, b"GIF89a but not really"), 400, "invalid_image")
    assert_error(client.post("/segment", files={"picture": ("x.jpg", jpeg, "image/jpeg")}), 400, "missing_image")
    assert_error(segment(client, jpeg, format="tiff"), 422, "invalid_request")
    assert_error(segment(client, jpeg, crf="maybe"), 422, "invalid_request")
    assert_error(segment(client, jpeg, model="no-such-model"), 404, "model_not_found")
    assert_error(client.get("/no/such/route"), 404)
    assert_error(client.get("/segment"), 405)
    assert client.get("/readyz").status_code == 200  # and the service is none the worse


def test_models_list_and_detail(client, cards):
    listing = client.get("/v1/models").json()
    assert listing["default"] == sorted(cards)[0]
    assert [entry["name"] for entry in listing["models"]] == sorted(cards)
    for entry in listing["models"]:
        card = cards[entry["name"]]
        assert entry["status"] == "ready" and entry["backend"] == "onnx-cpu" and entry["precision"] == "fp32"
        assert entry["classes"] == card.class_names and entry["input_size"] == list(card.input_size)
        assert entry["batching"] == {"max_batch_size": 1, "max_delay_ms": 0.0, "max_queue_size": 32,
                                     "request_timeout_s": 30.0}
    name = sorted(cards)[0]
    detail = client.get(f"/v1/models/{name}").json()
    assert detail["card"] == json.loads(cards[name].path.read_text())
    assert_error(client.get("/v1/models/nope"), 404, "model_not_found")


def test_probes(client, cards):
    assert client.get("/healthz").json() == {"status": "ok", "detail": None}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert set(ready.json()["models"]) == set(cards)


def test_openapi_documents_bodies_responses_and_errors(client):
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/segment"]["post"]
    body = operation["requestBody"]["content"]
    assert "multipart/form-data" in body and "image/jpeg" in body and "image/png" in body
    ok = operation["responses"]["200"]["content"]
    assert {"image/png", "image/jpeg", "application/x-npy"} <= set(ok)
    json_answers = [ref["$ref"].rsplit("/", 1)[1] for ref in ok["application/json"]["schema"]["anyOf"]]
    assert json_answers == ["RleWithUncertainty", "PolygonsResponse"]
    assert set(ok["application/json"]["examples"]) == {"rle", "polygons"}
    formats = next(p for p in operation["parameters"] if p["name"] == "format")["schema"]["enum"]
    assert formats == ["png", "rle", "probabilities", "uncertainty", "polygons", "overlay"]
    assert all(f"`{fmt}`" in operation["responses"]["200"]["description"] for fmt in formats)
    for status in ("400", "404", "413", "415", "422", "503", "504"):
        assert operation["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ErrorResponse")
    for schema in ("RleWithUncertainty", "PolygonsResponse", "BatchResponse"):
        assert spec["components"]["schemas"][schema]["examples"], schema
    batch = spec["paths"]["/segment/batch"]["post"]
    assert {"multipart/form-data", "application/json"} <= set(batch["requestBody"]["content"])
    assert batch["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/BatchResponse")
    for route in (operation, batch):
        assert "X-Model-Version" in route["responses"]["200"]["headers"]
    assert spec["paths"]["/v1/models/{name}"]["get"]["responses"]["200"]["content"]["application/json"]
    assert client.get("/docs").status_code == 200
