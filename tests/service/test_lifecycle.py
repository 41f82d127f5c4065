"""Start-up, readiness, API keys and graceful shutdown of real server processes."""

from __future__ import annotations

import json
import re
import shutil
import signal
import threading
import time

import httpx
import pytest


class HeldUploads:
    """Requests whose bodies stop halfway until `release()`: in flight, for sure, at any model speed."""

    def __init__(self, url: str, data: bytes, count: int):
        self.gate = threading.Event()
        self.results: list = []
        self.threads = [threading.Thread(target=self._post, args=(url, data)) for _ in range(count)]
        for thread in self.threads:
            thread.start()

    def _body(self, data: bytes):
        yield data[: len(data) // 2]
        self.gate.wait(timeout=120)
        yield data[len(data) // 2 :]

    def _post(self, url: str, data: bytes) -> None:
        try:
            response = httpx.post(url + "/segment", content=self._body(data), headers={"Content-Type": "image/png"},
                                  timeout=120)
            self.results.append(response.status_code)
        except httpx.HTTPError as exc:
            self.results.append(repr(exc))

    def release(self) -> list:
        self.gate.set()
        for thread in self.threads:
            thread.join(timeout=120)
        return self.results


def wait_in_flight(server, count: int) -> None:
    """Until the server is handling `count` requests (besides the metrics scrape that asks)."""
    pattern = re.compile(r"^seg_http_requests_in_flight (\S+)$", re.MULTILINE)
    server.wait_until(lambda response: float(pattern.search(response.text).group(1)) >= count + 1,
                      path="/metrics", timeout_s=60)


def test_sigterm_flips_readiness_serves_through_the_grace_then_drains_and_exits_0(
        service_factory, one_model_dir, camvid_image):
    server = service_factory(env={"SEG_DRAIN_GRACE_S": "2"}, models=one_model_dir)
    data = camvid_image.read_bytes()
    uploads = HeldUploads(server.url, data, 3)
    wait_in_flight(server, 3)
    server.process.send_signal(signal.SIGTERM)
    draining = server.wait_until(lambda response: response.status_code == 503, timeout_s=2)
    assert draining.json()["status"] == "draining"
    late = httpx.post(server.url + "/segment", content=data, headers={"Content-Type": "image/png"}, timeout=60)
    assert late.status_code == 200  # still served during the grace period
    time.sleep(3)  # past the grace: uvicorn is draining, the held requests are still in flight
    assert server.process.poll() is None
    assert uploads.release() == [200] * 3
    assert server.process.wait(timeout=60) == 0


def test_sigterm_finishes_in_flight_requests_and_exits_0(service_factory, one_model_dir, camvid_image):
    server = service_factory(models=one_model_dir)
    uploads = HeldUploads(server.url, camvid_image.read_bytes(), 4)
    wait_in_flight(server, 4)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(1)
    with pytest.raises(httpx.TransportError):  # no new connections once draining
        httpx.get(server.url + "/healthz", timeout=5)
    assert uploads.release() == [200] * 4
    assert server.process.wait(timeout=60) == 0


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


@pytest.fixture
def keyed(service_factory, one_model_dir):
    return service_factory(env={"SEG_AUTH__API_KEY": "k3y", "SEG_AUTH__OPEN_METRICS": "false"}, models=one_model_dir)


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
