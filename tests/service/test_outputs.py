"""The output formats, the batch endpoint and the drift metrics, on a real server and real images.

Probabilities and the uncertainty map are checked against the ONNX file run directly; polygons
are rasterised back with pycocotools and validated with shapely; batches against single requests.
"""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from modelcard.geometry import crop, letterbox, resize_channels
from service.imaging import decode_image
from service.uncertainty import normalised_entropy
from tests.support.prometheus import sample
from tests.support.service import ServiceProcess

pycocotools_mask = pytest.importorskip("pycocotools.mask", reason="pycocotools (dev dependency) rasterises polygons")
shapely_geometry = pytest.importorskip("shapely.geometry", reason="shapely validates the GeoJSON")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

MAX_BATCH_IMAGES = 3
SETTINGS = {"SEG_LIMITS__MAX_BATCH_IMAGES": str(MAX_BATCH_IMAGES),  # batches that can share a backend batch
            "SEG_BATCHING__MAX_BATCH_SIZE": "4", "SEG_BATCHING__MAX_DELAY_MS": "150",
            # the faster CRF of docs/ARCHITECTURE.md: this module checks that CRF combines, not how well
            "SEG_CRF__BILATERAL_SXY": "50", "SEG_CRF__BILATERAL_SRGB": "5", "SEG_CRF__BILATERAL_COMPAT": "4"}


@pytest.fixture(scope="module")
def client(models_dir, tmp_path_factory):
    server = ServiceProcess(models_dir, tmp_path_factory.mktemp("outputs") / "service.log", env=SETTINGS).start()
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client
    server.stop()


def post(client, path, model: str, fmt: str, **params) -> httpx.Response:
    response = client.post("/segment", params={"model": model, "format": fmt, **params},
                           files={"image": (path.name, path.read_bytes())})
    assert response.status_code == 200, response.text
    return response


def original_size(path) -> tuple[int, int]:
    """(height, width) of an image file."""
    with Image.open(path) as original:
        return original.height, original.width


def rle_labels(document: dict) -> np.ndarray:
    labels = np.full((document["height"], document["width"]), 255, np.uint8)
    for entry in document["classes"]:
        labels[pycocotools_mask.decode(entry["rle"]) == 1] = entry["id"]
    return labels


def png_labels(response: httpx.Response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(response.content)))


def reference_probabilities(card, path) -> np.ndarray:
    """The ONNX file run directly, restored to the original size the way the service documents."""
    import onnxruntime as ort

    pixels = np.asarray(decode_image(path.read_bytes(), 10**9))
    canvas, placement = letterbox(pixels, card.input_size)
    session = ort.InferenceSession(str(card.onnx_path), providers=["CPUExecutionProvider"])
    probabilities = session.run([card.outputs.probabilities.name], {card.input.name: canvas[None]})[0][0]
    return resize_channels(crop(probabilities, placement), pixels.shape[:2])


def test_probabilities_sum_to_one_and_every_format_labels_by_the_cards_rule(client, segmentation_model,
                                                                            kvasir_images):
    card, path = segmentation_model, kvasir_images[0]
    assert card.outputs.restore == "labels-nearest"  # what exports write; the other rule is tested below
    response = post(client, path, card.name, "probabilities")
    assert response.headers["content-type"] == "application/x-npy"
    quantised = np.load(io.BytesIO(response.content))
    assert quantised.shape == (*original_size(path), card.num_classes) and quantised.dtype == np.uint8
    sums = quantised.astype(np.int64).sum(axis=-1)
    assert np.abs(sums - 255).max() <= (card.num_classes + 2) / 2
    expected = reference_probabilities(card, path)
    assert np.abs(quantised / 255 - expected).max() <= 1.5 / 255
    # One rule gives every answer its labels, whatever the format: exactly equal...
    labelled = rle_labels(post(client, path, card.name, "rle", uncertainty="true").json())
    png = png_labels(post(client, path, card.name, "png"))
    assert np.array_equal(png, labelled)
    # ...and the bilinear probabilities' argmax differs from those nearest-neighbour labels only on borders.
    assert 0.99 <= (quantised.argmax(axis=-1) == labelled).mean()


@pytest.fixture(scope="module")
def bilinear_client(segmentation_model, tmp_path_factory):
    """A server on a copy of the model whose card names the other restore rule."""
    directory = tmp_path_factory.mktemp("bilinear-restore")
    (directory / segmentation_model.onnx_path.name).symlink_to(segmentation_model.onnx_path.resolve())
    card = segmentation_model.to_json()
    card["outputs"]["restore"] = "probabilities-bilinear"
    (directory / segmentation_model.path.name).write_text(json.dumps(card))
    server = ServiceProcess(directory, directory / "service.log").start()
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client
    server.stop()


def test_a_card_that_names_bilinear_restore_gets_the_argmax_of_the_resized_probabilities(
        bilinear_client, segmentation_model, kvasir_images):
    card, path = segmentation_model, kvasir_images[0]
    expected = reference_probabilities(card, path).argmax(axis=-1)
    for fmt in ("png", "rle"):
        response = post(bilinear_client, path, card.name, fmt)
        labels = png_labels(response) if fmt == "png" else rle_labels(response.json())
        assert (labels == expected).mean() >= 0.9999  # float noise may flip an exact tie


def test_uncertainty_map_is_the_normalised_entropy_as_an_8_bit_png(client, segmentation_model, kvasir_images):
    card, path = segmentation_model, kvasir_images[1]
    response = post(client, path, card.name, "uncertainty")
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert (image.height, image.width) == original_size(path) and image.mode == "L"
    grey = np.asarray(image).astype(np.int64)
    expected = np.rint(normalised_entropy(reference_probabilities(card, path)) * 255)
    assert np.abs(grey - expected).max() <= 1
    assert grey.min() < 20 and grey.max() > 200  # certain inside regions, unsure on their borders


def test_uncertainty_summary_in_json_answers(client, segmentation_model, kvasir_images):
    card, path = segmentation_model, kvasir_images[0]
    for fmt in ("rle", "polygons"):
        document = post(client, path, card.name, fmt, uncertainty="true").json()
        summary = document["uncertainty"]
        entropy = normalised_entropy(reference_probabilities(card, path))
        assert summary["mean_entropy"] == pytest.approx(float(entropy.mean()), abs=1e-4)
        assert summary["high_entropy_fraction"] == pytest.approx(float((entropy > 0.5).mean()), abs=1e-3)
        present = {entry["name"] for entry in document["classes"]}
        assert set(summary["class_confidence"]) == present
        assert all(0 <= value <= 1 for value in summary["class_confidence"].values())
    assert "uncertainty" not in post(client, path, card.name, "rle").json()


def region_mask(region: dict, height: int, width: int) -> np.ndarray:
    """A COCO region back to pixels with pycocotools: the outer ring minus the holes."""
    def rasterise(polygons):
        return pycocotools_mask.decode(pycocotools_mask.merge(pycocotools_mask.frPyObjects(polygons, height, width)))

    mask = rasterise(region["segmentation"]).astype(bool)
    if region["holes"]:
        mask &= ~rasterise(region["holes"]).astype(bool)
    return mask


def test_polygons_rasterise_back_to_the_mask_and_the_geojson_is_valid(client, cards, camvid_image, kvasir_images):
    for name, path in ((max(cards, key=lambda n: cards[n].num_classes), camvid_image),
                       (min(cards, key=lambda n: cards[n].num_classes), kvasir_images[0])):
        labels = png_labels(post(client, path, name, "png"))
        height, width = labels.shape
        document = post(client, path, name, "polygons").json()
        assert (document["width"], document["height"], document["tolerance"]) == (width, height, 0.0)
        assert [entry["id"] for entry in document["classes"]] == sorted(int(v) for v in np.unique(labels))
        for entry in document["classes"]:
            truth = labels == entry["id"]
            rebuilt = np.zeros_like(truth)
            for region in entry["regions"]:
                rebuilt |= region_mask(region, height, width)
            iou = (rebuilt & truth).sum() / (rebuilt | truth).sum()
            assert iou >= 0.99, (name, entry["name"], iou)
            assert entry["area"] == int(truth.sum())
        features = document["geojson"]["features"]
        assert document["geojson"]["type"] == "FeatureCollection"
        assert [feature["properties"]["class_id"] for feature in features] == [e["id"] for e in document["classes"]]
        for feature in features:
            geometry = shapely_geometry.shape(feature["geometry"])
            assert geometry.geom_type == "MultiPolygon" and geometry.is_valid, feature["properties"]
            assert geometry.area == pytest.approx((labels == feature["id"]).sum())


def test_polygon_tolerance_and_min_area_simplify_and_stay_valid(client, cards, camvid_image):
    name = max(cards, key=lambda n: cards[n].num_classes)
    exact = post(client, camvid_image, name, "polygons").json()
    simple = post(client, camvid_image, name, "polygons", tolerance=2, min_area=100).json()

    def vertices(document):
        return sum(len(ring) for entry in document["classes"] for region in entry["regions"]
                   for ring in region["segmentation"] + region["holes"])

    assert vertices(simple) < vertices(exact) / 2
    for entry in simple["classes"]:
        assert all(region["area"] >= 100 for region in entry["regions"])
    assert all(shapely_geometry.shape(f["geometry"]).is_valid for f in simple["geojson"]["features"])


def test_overlay_blends_the_palette_over_the_image(client, segmentation_model, kvasir_images):
    card, path = segmentation_model, kvasir_images[0]
    original = np.asarray(decode_image(path.read_bytes(), 10**9)).astype(np.float64)
    colours = np.asarray(card.palette, np.float64)[png_labels(post(client, path, card.name, "png"))]

    def overlay(**params) -> np.ndarray:
        response = post(client, path, card.name, "overlay", **params)
        assert response.headers["content-type"] == "image/jpeg"
        return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")).astype(np.float64)

    half = overlay(alpha=0.5, outlines="false")
    assert half.shape == original.shape
    assert np.abs(half - (original + colours) / 2).mean() < 4  # JPEG noise only
    assert np.abs(overlay(alpha=0, outlines="false") - original).mean() < 4
    outlined = overlay(alpha=0, outlines="true")
    assert np.abs(outlined - original).mean() > np.abs(overlay(alpha=0, outlines="false") - original).mean()


def test_crf_combines_with_every_format(client, segmentation_model, kvasir_images):
    card, path = segmentation_model, kvasir_images[1]
    media = {"probabilities": "application/x-npy", "uncertainty": "image/png", "polygons": "application/json",
             "overlay": "image/jpeg"}
    responses = {fmt: post(client, path, card.name, fmt, crf="true") for fmt in media}
    for fmt, response in responses.items():
        assert response.headers["content-type"] == media[fmt]
        assert "crf;dur=" in response.headers["server-timing"]
    refined = np.load(io.BytesIO(responses["probabilities"].content))
    plain = np.load(io.BytesIO(post(client, path, card.name, "probabilities").content))
    assert not np.array_equal(refined, plain)
    labelled = rle_labels(post(client, path, card.name, "rle", crf="true", uncertainty="true").json())
    assert np.array_equal(png_labels(post(client, path, card.name, "png", crf="true")), labelled)
    assert (refined.argmax(axis=-1) == labelled).mean() >= 0.99  # the card's rule vs bilinear: borders only


@pytest.mark.parametrize("params", [
    {"format": "png", "uncertainty": "true"}, {"format": "svg"}, {"format": "overlay", "alpha": "2"},
    {"format": "polygons", "tolerance": "-1"},
])
def test_bad_output_options_are_a_422_json_error(client, segmentation_model, kvasir_images, params):
    response = client.post("/segment", params={"model": segmentation_model.name, **params},
                           files={"image": ("x.jpg", kvasir_images[0].read_bytes())})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"


def batch_metrics(client, model: str) -> tuple[float, float]:
    text = client.get("/metrics").text
    return (sample(text, "seg_inference_batch_size_count", model=model),
            sample(text, "seg_inference_batch_size_sum", model=model))


def test_batch_answers_in_order_and_one_bad_image_fails_alone(client, segmentation_model, kvasir_images):
    card = segmentation_model
    first, second = kvasir_images[0], kvasir_images[2]
    batches_before, images_before = batch_metrics(client, card.name)
    response = client.post("/segment/batch", params={"model": card.name, "format": "rle"}, files=[
        ("images", (first.name, first.read_bytes(), "image/jpeg")),
        ("images", ("notes.txt", b"not an image", "application/octet-stream")),
        ("images", (second.name, second.read_bytes(), "image/jpeg")),
    ])
    assert response.status_code == 200, response.text
    batches_after, images_after = batch_metrics(client, card.name)
    assert images_after - images_before == 2
    assert batches_after - batches_before == 1, "the two images did not share a backend batch"
    answer = response.json()
    assert (answer["model"], answer["format"]) == (card.name, "rle") and response.headers["X-Model-Version"] == "1"
    entries = answer["results"]
    assert [(e["index"], e["filename"]) for e in entries] == [(0, first.name), (1, "notes.txt"), (2, second.name)]
    assert entries[1]["error"]["status"] == 400 and entries[1]["error"]["code"] == "invalid_image"
    for entry, path in ((entries[0], first), (entries[2], second)):
        assert "error" not in entry
        assert entry["result"] == post(client, path, card.name, "rle").json()


def test_json_batch_of_base64_images_with_polygons_and_uncertainty(client, segmentation_model, kvasir_images):
    card, path = segmentation_model, kvasir_images[0]
    images = [base64.b64encode(path.read_bytes()).decode(), "%%% not base64 %%%"]
    response = client.post("/segment/batch", params={"model": card.name, "format": "polygons", "uncertainty": "true"},
                           json={"images": images})
    assert response.status_code == 200, response.text
    good, bad = response.json()["results"]
    assert good["result"] == post(client, path, card.name, "polygons", uncertainty="true").json()
    assert bad["index"] == 1 and bad["error"]["code"] == "invalid_image"


def test_batch_limits_and_malformed_batches_are_json_errors(client, segmentation_model, kvasir_images):
    data = kvasir_images[1].read_bytes()
    too_many = [("images", (f"{i}.jpg", data, "image/jpeg")) for i in range(MAX_BATCH_IMAGES + 1)]
    for kwargs in ({"files": too_many}, {"json": {"images": [base64.b64encode(data).decode()] * 4}}):
        response = client.post("/segment/batch", params={"model": segmentation_model.name}, **kwargs)
        assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    for kwargs, status in (({"json": {"pictures": []}}, 400), ({"json": {"images": []}}, 400),
                           ({"content": data, "headers": {"Content-Type": "image/jpeg"}}, 415)):
        response = client.post("/segment/batch", **kwargs)
        assert response.status_code == status, response.text
        assert response.json()["error"]["message"]
    response = client.post("/segment/batch", params={"format": "png"}, json={"images": []})
    assert response.status_code == 422


def confidence_phase(client, model: str, images: list[np.ndarray]) -> dict[str, float]:
    """Send `images`; the deltas of the drift metrics they caused."""
    def read() -> dict[str, float]:
        text = client.get("/metrics").text
        return {"count": sample(text, "seg_image_confidence_ratio_count", model=model),
                "sum": sample(text, "seg_image_confidence_ratio_sum", model=model),
                "le_0.85": sample(text, "seg_image_confidence_ratio_bucket", model=model, le="0.85"),
                "low": sample(text, "seg_low_confidence_images_total", model=model)}

    before = read()
    for pixels in images:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        response = client.post("/segment", params={"model": model, "format": "rle"}, content=buffer.getvalue(),
                               headers={"Content-Type": "image/png"})
        assert response.status_code == 200, response.text
    after = read()
    delta = {key: after[key] - before[key] for key in after}
    delta["mean"] = delta.pop("sum") / delta["count"]
    return delta


def test_confidence_histogram_shifts_on_shuffled_and_inverted_images(client, cards, dataset_root):
    card = max(cards.values(), key=lambda c: c.num_classes)  # CamVid: its confidence falls on foreign images
    if card.metrics is None:
        pytest.skip(f"{card.name} is an untrained test model: no distribution to drift from")
    rng = np.random.default_rng(0)
    images = [np.asarray(Image.open(path).convert("RGB"))
              for path in sorted((dataset_root / "camvid" / "val").glob("*.png"))[:3]]
    shuffled = [rng.permutation(image.reshape(-1, 3)).reshape(image.shape) for image in images]
    inverted = [255 - image for image in images]
    own = confidence_phase(client, card.name, images)
    assert own["count"] == 3 and own["le_0.85"] == 0 and own["low"] == 0
    for foreign in (confidence_phase(client, card.name, shuffled), confidence_phase(client, card.name, inverted)):
        assert foreign["count"] == 3 and foreign["le_0.85"] == 3 and foreign["low"] == 3
        assert own["mean"] - foreign["mean"] > 0.05
