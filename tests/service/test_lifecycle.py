"""Start-up, readiness, API keys and graceful shutdown of real server processes."""

from __future__ import annotations

import json
import shutil
import threading
import time

import httpx
import pytest


def post_image(url: str, data: bytes, results: list, **params) -> None:
    try:
        results.append(httpx.post(url + "/segment", params=params, content=data,
                                  headers={"Content-Type": "image/png"}, timeout=120).status_code)
    except httpx.HTTPError as exc:
        results.append(repr(exc))


def in_background(url: str, data: bytes, count: int, **params) -> tuple[list[threading.Thread], list]:
    results: list = []
    threads = [threading.Thread(target=post_image, args=(url, data, results), kwargs=params) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def test_sigterm_flips_readiness_serves_through_the_grace_then_drains_and_exits_0(service_factory, camvid_image):
    server = service_factory(env={"SEG_DRAIN_GRACE_S": "3"})
    data = camvid_image.read_bytes()
    threads, results = in_background(server.url, data, 4, crf="true")  # CRF: slow, queued behind each other
    time.sleep(0.3)
    server.process.send_signal(15)
    draining = server.wait_until(lambda response: response.status_code == 503, timeout_s=2)
    assert draining.json()["status"] == "draining"
    late = httpx.post(server.url + "/segment", content=data, headers={"Content-Type": "image/png"}, timeout=60)
    assert late.status_code == 200  # still served during the grace period
    for thread in threads:
        thread.join(timeout=120)
    assert results == [200] * 4
    assert server.process.wait(timeout=60) == 0


def test_sigterm_finishes_in_flight_and_queued_requests(service_factory, camvid_image):
    server = service_factory()
    threads, results = in_background(server.url, camvid_image.read_bytes(), 6, crf="true")
    time.sleep(0.5)
    assert server.terminate() == 0
    for thread in threads:
        thread.join(timeout=120)
    assert results == [200] * 6, results


def test_readiness_names_the_model_that_failed_and_why(service_factory, cards, tmp_path):
    good = next(iter(cards.values()))
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy2(good.path, models / good.path.name)
    shutil.copy2(good.onnx_path, models / good.onnx_path.name)
    broken = json.loads(good.path.read_text()) | {"name": "broken"}
    broken["files"] = {**broken["files"], "onnx": "missing.onnx"}
    (models / "broken.json").write_text(json.dumps(broken))
    (models / "garbage.json").write_text("{not json")
    server = service_factory(models=models, wait_ready=False)
    readiness = server.wait_until(
        lambda response: all(model["status"] != "loading" for model in response.json()["models"].values()))
    assert readiness.json()["status"] == "failed"
    assert readiness.status_code == 503
    states = readiness.json()["models"]
    assert states[good.name]["status"] == "ready"
    assert states["broken"]["status"] == "failed" and "missing.onnx" in states["broken"]["error"]
    assert states["garbage"]["status"] == "failed" and "garbage.json" in states["garbage"]["error"]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get("/healthz").status_code == 200
        refused = client.post("/segment", params={"model": "broken"}, content=good.onnx_path.read_bytes()[:10],
                              headers={"Content-Type": "image/png"})
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "model_unavailable"
        assert client.get("/v1/models/broken").json()["status"] == "failed"


def test_missing_models_directory_is_reported_not_crashed(service_factory, tmp_path):
    server = service_factory(models=tmp_path / "nowhere", wait_ready=False)
    readiness = server.wait_until(lambda response: response.status_code == 503)
    assert "does not exist" in readiness.json()["problem"]
    assert httpx.get(server.url + "/healthz").status_code == 200


@pytest.fixture
def keyed(service_factory):
    return service_factory(env={"SEG_AUTH__API_KEY": "k3y", "SEG_AUTH__OPEN_METRICS": "false"})


def test_api_key_guards_the_api_and_optionally_metrics(keyed, camvid_image):
    data = camvid_image.read_bytes()
    png = {"Content-Type": "image/png"}
    with httpx.Client(base_url=keyed.url, timeout=60) as client:
        missing = client.post("/segment", content=data, headers=png)
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
        assert missing.json()["error"]["code"] == "unauthorized"
        assert client.post("/segment", content=data, headers={**png, "X-API-Key": "wrong"}).status_code == 401
        assert client.post("/segment", content=data, headers={**png, "X-API-Key": "k3y"}).status_code == 200
        assert client.post("/segment", content=data, headers={**png, "Authorization": "Bearer k3y"}).status_code == 200
        assert client.get("/v1/models").status_code == 401
        assert client.get("/v1/models", headers={"X-API-Key": "k3y"}).status_code == 200
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200  # open probes
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer k3y"}).status_code == 200
