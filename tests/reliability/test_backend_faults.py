"""Backend faults: an engine that raises fails only the requests it was running (500), is counted in the
metrics and leaves the service up; a model that cannot load leaves the others serving and `/readyz`
says which one failed and why."""

from __future__ import annotations

import io
import json
import shutil

import httpx
import numpy as np
from PIL import Image

from modelcard.card import load_card, sha256_file
from tests.reliability.faulty_service import POISON
from tests.support.prometheus import sample


def png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def post(client: httpx.Client, data: bytes, model: str) -> httpx.Response:
    return client.post("/segment", params={"model": model}, content=data, headers={"Content-Type": "image/png"})


def test_an_engine_error_fails_only_the_affected_requests_and_is_counted(service_factory, cards):
    server = service_factory(module="tests.reliability.faulty_service")
    poisoned, good = png(POISON), png((90, 120, 60))
    names = sorted(cards)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for name in names:
            assert post(client, good, name).status_code == 200
            failed = post(client, poisoned, name)
            assert failed.status_code == 500, failed.text
            error = failed.json()["error"]
            assert error["code"] == "inference_failed" and "injected fault" in error["message"]
            assert post(client, good, name).status_code == 200, "a good request after the fault failed"
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        metrics = client.get("/metrics").text
    assert sample(metrics, "seg_http_requests_total", route="/segment", status="500") == len(names)
    assert sample(metrics, "seg_http_requests_total", route="/segment", status="200") == 2 * len(names)
    for name in names:
        assert sample(metrics, "seg_inference_failures_total", model=name) == 1
    assert server.process.poll() is None


def test_an_engine_that_keeps_failing_makes_healthz_say_which_until_it_recovers(service_factory, cards):
    server = service_factory(module="tests.reliability.faulty_service")
    name = sorted(cards)[0]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(3):
            assert post(client, png(POISON), name).status_code == 500
        unhealthy = client.get("/healthz")
        assert unhealthy.status_code == 503 and name in unhealthy.json()["detail"]
        assert post(client, png((10, 200, 30)), name).status_code == 200
        assert client.get("/healthz").status_code == 200


def test_a_model_that_fails_to_load_is_named_in_readyz_with_the_reason(service_factory, cards, models_dir, tmp_path):
    """Three cards: one intact, one whose ONNX file was damaged after export (checksum), one with a
    consistent card over a file that is not an ONNX graph (the engine refuses it)."""
    intact, damaged = sorted(cards)[:2]
    models = tmp_path / "models"
    models.mkdir()
    for name in (intact, damaged):
        shutil.copy(cards[name].path, models / cards[name].path.name)
        shutil.copy(cards[name].onnx_path, models / cards[name].onnx_path.name)
    onnx = models / cards[damaged].onnx_path.name
    onnx.write_bytes(onnx.read_bytes()[: onnx.stat().st_size // 2])
    garbage = models / "garbled.onnx"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    card = json.loads(cards[intact].path.read_text())
    card["name"] = "garbled"
    card["files"] = {**card["files"], "onnx": garbage.name, "onnx_sha256": sha256_file(garbage)}
    (models / "garbled.json").write_text(json.dumps(card))
    load_card(models / "garbled.json")  # the card itself is valid

    server = service_factory(models=models, wait_ready=False)
    readiness = server.wait_until(lambda response: response.json()["status"] == "failed"
                                  and "loading" not in {m["status"] for m in response.json()["models"].values()})
    assert readiness.status_code == 503
    report = readiness.json()["models"]
    assert report[intact] == {"status": "ready", "error": None, "version": 1}
    assert report[damaged]["status"] == "failed" and "onnx_sha256" in report[damaged]["error"]
    assert report["garbled"]["status"] == "failed" and "garbled.onnx" in report["garbled"]["error"]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert post(client, png((90, 120, 60)), intact).status_code == 200
        unavailable = post(client, png((90, 120, 60)), damaged)
        assert unavailable.status_code == 503 and unavailable.json()["error"]["code"] == "model_unavailable"
        listed = {entry["name"]: entry for entry in client.get("/v1/models").json()["models"]}
        assert listed["garbled"]["status"] == "failed" and listed["garbled"]["error"]
        assert client.get("/healthz").status_code == 200
