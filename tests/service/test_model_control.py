"""Models added, replaced and removed on a running server (--model-control poll|explicit), under load, real clients."""

from __future__ import annotations

import base64
import io
import shutil
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.prometheus import sample
from tests.support.service import add_version

tritonclient = pytest.importorskip("tritonclient.http", reason="tritonclient[http] (dev dependency)")
KEY = {"X-API-Key": "k3y"}


def small_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


class Load:
    """Requests to one model, back to back from two clients, until `stop()`: (client, status, version) of each."""

    def __init__(self, url: str, model: str):
        self.answers: list[tuple[int, int, str | None]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(url, model, client)) for client in range(2)]
        for thread in self._threads:
            thread.start()

    def _run(self, url: str, model: str, client_id: int) -> None:
        data = small_jpeg()
        with httpx.Client(base_url=url, timeout=60) as client:
            while not self._stop.is_set():
                response = client.post("/segment", params={"model": model}, content=data,
                                       headers={"Content-Type": "image/jpeg"})
                self.answers.append((client_id, response.status_code, response.headers.get("X-Model-Version")))

    def wait_for(self, count: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        start = len(self.answers)
        while len(self.answers) < start + count and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> list[tuple[int, int, str | None]]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        return self.answers


def model_state(server, name: str, headers: dict | None = None) -> httpx.Response:
    return httpx.get(f"{server.url}/v1/models/{name}", headers=headers, timeout=10)


def test_poll_adds_swaps_keeps_and_removes_models_under_load(service_factory, tiny_cards, tmp_path):
    polyp, camvid = tiny_cards["polyp"], tiny_cards["camvid"]
    repo = tmp_path / "repo"
    add_version(repo, polyp, None)
    server = service_factory(args=["--model-control", "poll", "--repository-poll-s", "0.3"], models=repo)

    polyp_load = Load(server.url, "polyp")
    add_version(repo, camvid, 1)
    server.wait_until(lambda r: r.status_code == 200 and r.json()["status"] == "ready", path="/v1/models/camvid")
    polyp_load.wait_for(4)
    assert {status for _, status, _ in polyp_load.stop()} == {200}

    camvid_load = Load(server.url, "camvid")
    camvid_load.wait_for(4)
    add_version(repo, camvid, 2)  # a new version while camvid is under load
    server.wait_until(lambda r: r.json()["version"] == 2, path="/v1/models/camvid")
    camvid_load.wait_for(6)
    answers = camvid_load.stop()
    assert {status for _, status, _ in answers} == {200}, answers
    for client in range(2):  # each client sees one switch, and no way back
        versions = [version for client_id, _, version in answers if client_id == client]
        first_new = versions.index("2")
        assert set(versions[:first_new]) <= {"1"} and set(versions[first_new:]) == {"2"}, versions
    assert ("1" in {v for _, _, v in answers}) and versions[-1] == "2"
    assert model_state(server, "camvid").json()["versions"] == [{"version": 2, "status": "ready", "error": None}]
    for version, status in ((2, 200), (1, 404)):  # ?version= pins one; the released one is gone
        pinned = httpx.post(server.url + "/segment", params={"model": "camvid", "version": version},
                            content=small_jpeg(), headers={"Content-Type": "image/jpeg"}, timeout=60)
        assert pinned.status_code == status
        assert pinned.headers.get("X-Model-Version") == ("2" if status == 200 else None)
    batch = httpx.post(server.url + "/segment/batch", params={"model": "camvid", "version": 2},
                       json={"images": [base64.b64encode(small_jpeg()).decode()]}, timeout=60)
    assert batch.status_code == 200 and batch.headers["X-Model-Version"] == "2"

    add_version(repo, camvid, 3, onnx=b"a corrupt graph" * 64)
    failed = server.wait_until(lambda r: r.json()["versions"][0]["status"] == "failed", path="/v1/models/camvid")
    assert failed.json()["status"] == "ready" and failed.json()["error"].startswith("version 3: ")
    readiness = httpx.get(server.url + "/readyz", timeout=10)
    assert readiness.status_code == 200 and readiness.json()["models"]["camvid"]["version"] == 2
    assert "version 3" in readiness.json()["models"]["camvid"]["error"]
    still = httpx.post(server.url + "/segment", params={"model": "camvid"}, content=small_jpeg(),
                       headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert still.status_code == 200 and still.headers["X-Model-Version"] == "2"
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    assert sample(metrics, "seg_model_loads_total", model="camvid", result="failure") == 1
    assert sample(metrics, "seg_model_loads_total", model="camvid", result="success") == 2
    assert sample(metrics, "seg_model_info", model="camvid", version="1") == 0
    assert sample(metrics, "seg_model_info", model="camvid", version="2") == 1
    assert sample(metrics, "seg_image_confidence_ratio_count", model="camvid", version="2") >= 3  # drift by version

    refused = httpx.post(server.url + "/v1/models/camvid/load", timeout=10)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "model_control"

    shutil.rmtree(repo / "camvid")
    server.wait_until(lambda r: r.status_code == 404, path="/v1/models/camvid")
    gone = httpx.post(server.url + "/segment", params={"model": "camvid"}, content=small_jpeg(),
                      headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"


def test_explicit_load_and_unload_through_both_apis_need_the_key(service_factory, tiny_cards, tmp_path):
    polyp, camvid = tiny_cards["polyp"], tiny_cards["camvid"]
    repo = tmp_path / "repo"
    add_version(repo, polyp, None)
    server = service_factory(args=["--model-control", "explicit"], env={"SEG_AUTH__API_KEY": "k3y"}, models=repo)
    triton = tritonclient.InferenceServerClient(url=server.url.removeprefix("http://"), network_timeout=60)
    add_version(repo, camvid, 1)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        unauthorised = client.post("/v2/repository/models/camvid/load")
        assert unauthorised.status_code == 401 and isinstance(unauthorised.json()["error"], str)
        assert client.post("/v1/models/camvid/load").status_code == 401
        assert client.post("/v1/models/polyp/unload").status_code == 401

        index = {row["name"]: row for row in triton.get_model_repository_index(headers=KEY)}
        assert index["polyp"]["state"] == "READY" and index["camvid"]["state"] == "UNAVAILABLE"
        assert model_state(server, "camvid", KEY).status_code == 404  # on disk, not loaded: nothing polls

        triton.load_model("camvid", headers=KEY)
        assert triton.is_model_ready("camvid", headers=KEY)
        segment = {"params": {"model": "camvid"}, "content": small_jpeg(),
                   "headers": {"Content-Type": "image/jpeg", **KEY}}
        assert client.post("/segment", **segment).status_code == 200

        assert client.post("/v1/models/camvid/unload", headers=KEY).status_code == 204
        assert client.post("/segment", **segment).status_code == 404
        loaded = client.post("/v1/models/camvid/load", headers=KEY)
        assert loaded.status_code == 200 and loaded.json()["status"] == "ready" and loaded.json()["version"] == 1

        triton.unload_model("camvid", headers=KEY)
        assert not triton.is_model_ready("camvid", headers=KEY)
        assert client.post("/v1/models/camvid/unload", headers=KEY).status_code == 404
        assert client.post("/v1/models/nope/load", headers=KEY).status_code == 404

        add_version(repo, camvid, 2, onnx=b"a corrupt graph" * 64)
        with pytest.raises(tritonclient.InferenceServerException) as failed:
            triton.load_model("camvid", headers=KEY)
        assert failed.value.status() == "400" and "version 2 failed to load" in failed.value.message()
        ready = [row["name"] for row in triton.get_model_repository_index(headers=KEY) if row["state"] == "READY"]
        assert ready == ["polyp"]
    triton.close()
