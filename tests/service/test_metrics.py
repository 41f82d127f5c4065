"""/metrics: valid Prometheus exposition (promtool), scraped by a real Prometheus, merged across workers."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import httpx
import pytest

from tests.support.prometheus import sample
from tests.support.service import ServiceProcess, free_port

EXPECTED_FAMILIES = (
    "seg_http_requests_total", "seg_http_request_duration_seconds", "seg_http_requests_in_flight",
    "seg_queue_wait_seconds", "seg_queue_depth", "seg_inference_duration_seconds", "seg_inference_batch_size",
    "seg_stage_duration_seconds", "seg_model_info", "seg_model_loads_total",
    "seg_predicted_area_ratio", "seg_image_confidence_ratio", "seg_low_confidence_images_total",
)


@pytest.fixture(scope="module")
def scraped(models_dir, tmp_path_factory, camvid_image):
    """A server that has answered a few requests of each kind, and its /metrics text."""
    server = ServiceProcess(models_dir, tmp_path_factory.mktemp("metrics") / "service.log").start()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(3):
            assert client.post("/segment", content=camvid_image.read_bytes(),
                               headers={"Content-Type": "image/png"}).status_code == 200
        client.post("/segment", params={"crf": "true"}, content=camvid_image.read_bytes(),
                    headers={"Content-Type": "image/png"})
        client.post("/segment", content=b"x", headers={"Content-Type": "text/plain"})
        text = client.get("/metrics").text
    yield server, text
    server.stop()


def test_metrics_cover_the_request_path(scraped, cards):
    _, text = scraped
    for family in EXPECTED_FAMILIES:
        assert f"# TYPE {family} " in text, family
    assert sample(text, "seg_http_requests_total", route="/segment", method="POST", status="200") == 4
    assert sample(text, "seg_http_requests_total", route="/segment", method="POST", status="415") == 1
    assert sample(text, "seg_http_request_duration_seconds_count", route="/segment", method="POST") == 5
    default = sorted(cards)[0]
    assert sample(text, "seg_inference_batch_size_count", model=default) == 4
    assert sample(text, "seg_stage_duration_seconds_count", stage="crf", model=default) == 1
    assert sample(text, "seg_stage_duration_seconds_count", stage="decode", model=default) == 4
    assert sample(text, "seg_queue_depth", model=default) == 0
    for name in cards:
        assert sample(text, "seg_model_info", model=name, version="1", backend="onnx-cpu", precision="fp32") == 1
        assert sample(text, "seg_model_loads_total", model=name, result="success") == 1
    assert sample(text, "seg_inference_duration_seconds_count", model=default, version="1") == 4
    card = cards[default]  # drift signals: one sample per image, per class for the areas, by version
    assert sample(text, "seg_image_confidence_ratio_count", model=default, version="1") == 4
    for class_name in card.class_names:
        assert sample(text, "seg_predicted_area_ratio_count", model=default, version="1", **{"class": class_name}) == 4
    assert sum(sample(text, "seg_predicted_area_ratio_sum", model=default, **{"class": class_name})
               for class_name in card.class_names) == pytest.approx(4)


def test_promtool_accepts_the_exposition(scraped):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus')")
    _, text = scraped
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_real_prometheus_scrapes_the_latency_histogram(scraped, tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (Debian package 'prometheus')")
    server, _ = scraped
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: segmentation\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{server.port}']\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    prometheus = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    query = 'histogram_quantile(0.5, sum by (le) (rate(seg_http_request_duration_seconds_bucket[1m])))'
    try:
        deadline = time.monotonic() + 60
        result = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            while time.monotonic() < deadline and not result:
                time.sleep(1)
                httpx.post(server.url + "/segment", content=b"x", headers={"Content-Type": "text/plain"})
                try:
                    count = client.get("/api/v1/query", params={
                        "query": 'seg_http_request_duration_seconds_count{route="/segment"}'}).json()
                except httpx.TransportError:
                    continue
                result = count["data"]["result"]
            assert result, f"Prometheus never scraped the service: {(tmp_path / 'prometheus.log').read_text()}"
            assert float(result[0]["value"][1]) >= 5
            quantile = client.get("/api/v1/query", params={"query": query}).json()
            assert quantile["status"] == "success" and quantile["data"]["resultType"] == "vector"
            targets = client.get("/api/v1/targets").json()["data"]["activeTargets"]
            assert targets and targets[0]["health"] == "up"
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
        log.close()


def test_two_workers_report_merged_counts(service_factory, one_model_dir, camvid_image, segmentation_model, tmp_path):
    metrics_dir = tmp_path / "multiproc"
    server = service_factory(args=["--workers", "2"], env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
                             models=one_model_dir)
    requests = 8
    responses = asyncio.run(concurrent_segments(server.url, camvid_image.read_bytes(), requests))
    assert [response.status_code for response in responses] == [200] * requests
    writers = {path.stem.rsplit("_", 1)[-1] for path in metrics_dir.glob("histogram_*.db")}
    assert len(writers) == 2, f"expected samples from both workers, got files for pids {writers}"
    default = segmentation_model.name
    for _ in range(4):  # whichever worker answers the scrape reports both workers' requests
        text = httpx.get(server.url + "/metrics", timeout=30).text
        assert sample(text, "seg_http_requests_total", route="/segment", method="POST", status="200") == requests
        assert sample(text, "seg_inference_duration_seconds_count", model=default, backend="onnx-cpu") == requests
        assert sample(text, "seg_http_requests_in_flight") == 1  # just this scrape
        assert sample(text, "seg_model_info", model=default, backend="onnx-cpu", precision="fp32") == 1
    if shutil.which("promtool"):
        result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


async def concurrent_segments(url: str, data: bytes, count: int) -> list[httpx.Response]:
    """`count` requests at once, each on its own connection, so the kernel spreads them over workers."""
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=count)) as client:
        return await asyncio.gather(*(
            client.post("/segment", content=data, headers={"Content-Type": "image/png"}) for _ in range(count)))
