"""The demo page at / in a real headless Chromium: upload, overlay, legend, timing, downloads, errors.

The mask the page draws is read back from its overlay canvas (opaque palette colours; opacity is
CSS only), mapped to class ids through the card's palette, and compared with the API's PNG mask.
"""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageOps

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
RESULT_TIMEOUT_S = 120

READ_OVERLAY = """
const canvas = document.getElementById("overlay");
const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
let text = "";
for (let i = 0; i < data.length; i += 0x8000) text += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
return [canvas.width, canvas.height, btoa(text)];
"""
DROP_FILE = """
const [name, type, encoded] = arguments;
const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
const transfer = new DataTransfer();
transfer.items.add(new File([bytes], name, {type}));
document.getElementById("drop-zone").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
"""


def wait_for_state(browser, *states: str, timeout_s: float = RESULT_TIMEOUT_S) -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout_s).until(lambda b: b.find_element("tag name", "body").get_attribute("data-state")
                                            in states)
    return browser.find_element("tag name", "body").get_attribute("data-state")


def choose_model(browser, model: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "model-select")).select_by_value(model)
    wait_for_state(browser, "idle", "error")


def open_page(browser, service, model: str) -> None:
    browser.get(service.url + "/")
    wait_for_state(browser, "idle", "error")
    choose_model(browser, model)


def upload(browser, service, model: str, path: Path) -> None:
    """Open the page on `model`, choose `path` in the file input and wait for the answer."""
    open_page(browser, service, model)
    browser.find_element("id", "file-input").send_keys(str(path))
    assert wait_for_state(browser, "ready", "error") == "ready", browser.find_element("id", "status").text


def displayed_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).size


def api_mask(service, path: Path, model: str, crf: bool = False) -> np.ndarray:
    response = httpx.post(f"{service.url}/segment", params={"model": model, "crf": str(crf).lower()},
                          files={"image": (path.name, path.read_bytes())}, timeout=120)
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)))


def rendered_mask(browser, card) -> np.ndarray:
    """Class ids of the overlay canvas, through the card's palette (unknown colours fail)."""
    width, height, encoded = browser.execute_script(READ_OVERLAY)
    rgba = np.frombuffer(base64.b64decode(encoded), np.uint8).reshape(height, width, 4)
    assert (rgba[..., 3] == 255).all(), "some pixels of the overlay have no class"
    packed = (rgba[..., 0].astype(np.int64) << 16) | (rgba[..., 1].astype(np.int64) << 8) | rgba[..., 2]
    ids = np.full(packed.shape, -1, np.int64)
    for class_id, (r, g, b) in enumerate(card.palette):
        ids[packed == (r << 16 | g << 8 | b)] = class_id
    assert (ids >= 0).all(), "the overlay holds colours outside the card's palette"
    return ids.astype(np.uint8)


def legend(browser) -> list[tuple[str, str, str]]:
    return [(item.find_element("class name", "class-name").text,
             item.find_element("class name", "swatch").value_of_css_property("background-color"),
             item.find_element("class name", "share").text)
            for item in browser.find_elements("css selector", "#legend li")]


def rgba_css(colour) -> str:
    return f"rgba({colour[0]}, {colour[1]}, {colour[2]}, 1)"


def test_upload_shows_the_apis_mask_with_legend_and_timing(browser, service, segmentation_model, kvasir_images,
                                                          artifacts):
    card, path = segmentation_model, kvasir_images[0]
    upload(browser, service, card.name, path)

    expected = api_mask(service, path, card.name)
    rendered = rendered_mask(browser, card)
    assert rendered.shape[::-1] == displayed_size(path)
    assert np.array_equal(rendered, expected), f"{(rendered != expected).sum()} pixels differ from the API's mask"

    shown = legend(browser)
    assert [(name, colour) for name, colour, _ in shown] == [(c.name, rgba_css(c.color)) for c in card.classes]
    present = set(np.unique(expected))
    for class_id, (_, _, share) in enumerate(shown):
        assert share.endswith("%") == (class_id in present), shown
    stages = [row.get_attribute("data-stage") for row in browser.find_elements("css selector", "#timing li")]
    assert stages == ["decode", "preprocess", "queue", "infer", "encode", "round trip (browser)"]
    assert card.name in browser.find_element("id", "status").text

    slider = browser.find_element("id", "opacity-slider")
    browser.execute_script("arguments[0].value = 35; arguments[0].dispatchEvent(new Event('input'));", slider)
    assert browser.find_element("id", "overlay").value_of_css_property("opacity") == "0.35"
    browser.execute_script("arguments[0].value = 60; arguments[0].dispatchEvent(new Event('input'));", slider)
    screenshot = artifacts / f"demo-{card.name}.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000


def test_dropped_image_with_crf_on_another_model(browser, service, cards, segmentation_model, camvid_image, artifacts):
    card = max(cards.values(), key=lambda c: (c.num_classes, c.name))
    open_page(browser, service, card.name)
    browser.find_element("id", "crf-toggle").click()
    browser.execute_script(DROP_FILE, camvid_image.name, "image/png",
                           base64.b64encode(camvid_image.read_bytes()).decode())
    assert wait_for_state(browser, "ready", "error") == "ready", browser.find_element("id", "status").text

    assert np.array_equal(rendered_mask(browser, card), api_mask(service, camvid_image, card.name, crf=True))
    assert [name for name, _, _ in legend(browser)] == card.class_names
    stages = [row.get_attribute("data-stage") for row in browser.find_elements("css selector", "#timing li")]
    assert "crf" in stages
    browser.save_screenshot(str(artifacts / f"demo-{card.name}-crf.png"))


def wait_for_download(directory: Path, suffix: str, timeout_s: float = 30) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = [path for path in directory.iterdir() if path.name.endswith(suffix)]
        if done:
            return done[0]
        time.sleep(0.1)
    raise TimeoutError(f"no *{suffix} in {directory}: {sorted(p.name for p in directory.iterdir())}")


def test_downloads_are_the_apis_png_and_rle(browser, service, segmentation_model, kvasir_images, downloads):
    card, path = segmentation_model, kvasir_images[0]
    open_page(browser, service, card.name)
    browser.find_element("id", "file-input").send_keys(str(path))
    assert wait_for_state(browser, "ready", "error") == "ready"

    browser.find_element("id", "download-rle").click()
    saved_rle = wait_for_download(downloads, ".mask.json")
    answer = httpx.post(f"{service.url}/segment", params={"model": card.name, "format": "rle"},
                        files={"image": (path.name, path.read_bytes())}, timeout=120).json()
    assert json.loads(saved_rle.read_text()) == answer

    browser.find_element("id", "download-png").click()
    saved_png = wait_for_download(downloads, ".mask.png")
    with Image.open(saved_png) as mask:
        assert mask.mode == "P"
        assert np.array_equal(np.asarray(mask), api_mask(service, path, card.name))


def test_an_api_error_is_shown_not_swallowed(browser, service, segmentation_model, tmp_path):
    open_page(browser, service, segmentation_model.name)
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("not an image")
    browser.find_element("id", "file-input").send_keys(str(not_an_image))
    assert wait_for_state(browser, "ready", "error") == "error"
    assert "415 unsupported_media_type" in browser.find_element("id", "status").text


def test_with_an_api_key_the_page_asks_for_it_and_then_works(browser, service_factory, segmentation_model,
                                                             kvasir_images):
    key = "demo-key"
    server = service_factory(env={"SEG_AUTH__API_KEY": key})
    browser.get(server.url + "/")
    assert wait_for_state(browser, "error") == "error"
    assert "401 unauthorized" in browser.find_element("id", "status").text
    key_field = browser.find_element("id", "api-key")
    key_field.send_keys(key)
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'));", key_field)
    assert wait_for_state(browser, "idle", "error") == "idle", browser.find_element("id", "status").text
    choose_model(browser, segmentation_model.name)
    browser.find_element("id", "file-input").send_keys(str(kvasir_images[0]))
    assert wait_for_state(browser, "ready", "error") == "ready", browser.find_element("id", "status").text


READ_VIEW_IMAGE = """
const image = document.getElementById("view-image");
const canvas = document.createElement("canvas");
canvas.width = image.naturalWidth;
canvas.height = image.naturalHeight;
const context = canvas.getContext("2d");
context.drawImage(image, 0, 0);
const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
let text = "";
for (let i = 0; i < data.length; i += 0x8000) text += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
return [canvas.width, canvas.height, btoa(text)];
"""


def choose_view(browser, view: str) -> np.ndarray:
    """Pick a view and wait for the page to show it; its pixels (RGB) as the browser decoded them."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.find_element("css selector", f'input[name="view"][value="{view}"]').click()
    WebDriverWait(browser, RESULT_TIMEOUT_S).until(
        lambda b: b.find_element("id", "view-image").get_attribute("data-view") == view
        or b.find_element("tag name", "body").get_attribute("data-state") == "error")
    assert wait_for_state(browser, "ready", "error") == "ready", browser.find_element("id", "status").text
    assert not browser.find_element("id", "overlay").is_displayed()
    width, height, encoded = browser.execute_script(READ_VIEW_IMAGE)
    return np.frombuffer(base64.b64decode(encoded), np.uint8).reshape(height, width, 4)[..., :3]


def api_view(service, path: Path, model: str, view: str, **params) -> np.ndarray:
    response = httpx.post(f"{service.url}/segment", params={"model": model, "format": view, **params},
                          files={"image": (path.name, path.read_bytes())}, timeout=120)
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")).astype(np.int64)


def test_the_uncertainty_map_and_the_server_overlay_views(browser, service, segmentation_model, kvasir_images,
                                                          artifacts):
    card, path = segmentation_model, kvasir_images[0]
    upload(browser, service, card.name, path)

    uncertainty = choose_view(browser, "uncertainty")
    assert uncertainty.shape[1::-1] == displayed_size(path)
    assert np.array_equal(uncertainty, api_view(service, path, card.name, "uncertainty"))  # PNG: lossless
    browser.save_screenshot(str(artifacts / f"demo-{card.name}-uncertainty.png"))

    overlay = choose_view(browser, "overlay")  # blended at the slider's 60 %
    expected = api_view(service, path, card.name, "overlay", alpha=0.6)
    assert overlay.shape == expected.shape
    assert np.abs(overlay - expected).mean() < 2  # JPEG decoders may differ in the last bit
    browser.save_screenshot(str(artifacts / f"demo-{card.name}-overlay.png"))

    choose_mask = browser.find_element("css selector", 'input[name="view"][value="mask"]')
    choose_mask.click()
    assert browser.find_element("id", "overlay").is_displayed()
    assert not browser.find_element("id", "view-image").is_displayed()
