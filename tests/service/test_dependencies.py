"""The routes' dependencies, in-process on a tiny model: before the model is ready a route gets the registry's
JSON error (it never sees a half-loaded version); once ready it is handed the version it serves with, and lets
it go when it returns, also when it fails."""

from __future__ import annotations

import io
import threading
import time

import pytest
from PIL import Image

from service import registry as registry_module
from service.app import create_app
from service.settings import Settings
from tests.support.service import add_version

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture
def gate(monkeypatch):
    """Model loading waits until the test sets this event."""
    opened = threading.Event()
    load = registry_module.load_backend_checked

    def waiting(card, settings):
        opened.wait(60)
        return load(card, settings)

    monkeypatch.setattr(registry_module, "load_backend_checked", waiting)
    yield opened
    opened.set()  # a failing test must not leave the loading thread waiting


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (128, 64, 32)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_route_reached_before_its_model_is_ready_gets_the_json_error_then_the_model(tiny_cards, tmp_path, gate):
    from fastapi.testclient import TestClient  # imported under the warning filter above

    add_version(tmp_path, tiny_cards["polyp"], None)
    settings = Settings(models=tmp_path, backend="onnx-cpu", onnx={"intra_op_threads": 1})
    image = {"content": png(), "headers": {"Content-Type": "image/png"}}
    app = create_app(settings)
    with TestClient(app) as client:
        loading = client.post("/segment", **image)
        assert loading.status_code == 503 and loading.headers["retry-after"] == "5"
        assert loading.json()["error"]["code"] == "model_loading"
        assert client.post("/segment/batch", json={"images": []}).json()["error"]["code"] == "model_loading"
        assert client.post("/v2/models/polyp/infer", json={}).json() == {"error": "model 'polyp' is still loading"}
        assert client.post("/segment", params={"model": "nope"}, **image).json()["error"]["code"] == "model_not_found"
        assert client.post("/segment", params={"version": 0}, **image).status_code == 422
        unknown = client.post("/v2/models/polyp/versions/first/infer", json={})
        assert unknown.status_code == 404 and "positive integers" in unknown.json()["error"]

        gate.set()
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").json()
            time.sleep(0.1)
        served = client.post("/segment", params={"format": "rle"}, **image)
        assert served.status_code == 200, served.text
        assert (served.headers["x-model"], served.headers["x-model-version"], served.headers["x-backend"]) == (
            "polyp", "1", "onnx-cpu")
        assert served.json()["width"] == 40 and served.json()["height"] == 30
        broken = client.post("/segment", content=b"GIF89a but not really", headers={"Content-Type": "image/gif"})
        assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_image"
        assert app.state.service.registry.models["polyp"].serving[1].users == 0  # each route let its version go
