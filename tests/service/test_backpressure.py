"""Overload: a burst larger than the queue gets 503 + Retry-After, late requests get 504, and the service recovers."""

from __future__ import annotations

import asyncio

import httpx


async def burst(url: str, data: bytes, count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        requests = [client.post("/segment", content=data, headers={"Content-Type": "image/png"}) for _ in range(count)]
        return await asyncio.gather(*requests)


def test_burst_beyond_the_queue_gets_503_with_retry_after_and_the_service_recovers(
        service_factory, one_model_dir, camvid_image):
    server = service_factory(env={"SEG_BATCHING__MAX_QUEUE_SIZE": "1"}, models=one_model_dir)
    data = camvid_image.read_bytes()
    responses = asyncio.run(burst(server.url, data, 24))
    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {200, 503}, statuses
    refused = [response for response in responses if response.status_code == 503]
    assert refused, "a burst of 24 never overflowed a queue of 1"
    assert statuses.count(200) >= 1
    for response in refused:
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json()["error"]["code"] == "queue_full"
    # Recovery: sequential requests are all served, and the server still says it is ready.
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(3):
            assert client.post("/segment", content=data, headers={"Content-Type": "image/png"}).status_code == 200
        assert client.get("/readyz").status_code == 200
        metrics = client.get("/metrics").text
    assert 'seg_http_requests_total{method="POST",route="/segment",status="503"}' in metrics


def test_requests_past_their_deadline_get_504_json(service_factory, one_model_dir, camvid_image):
    server = service_factory(env={"SEG_BATCHING__REQUEST_TIMEOUT_S": "0.001"}, models=one_model_dir)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        response = client.post("/segment", content=camvid_image.read_bytes(), headers={"Content-Type": "image/png"})
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "deadline_exceeded"
        assert client.get("/healthz").status_code == 200
