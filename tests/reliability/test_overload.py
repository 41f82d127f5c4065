"""Overload: more concurrent clients than queue + batch capacity. Every request gets 200 or 503 with
Retry-After, none hangs, memory stays bounded across bursts, and throughput recovers afterwards."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from benchmarks.procfs import resident_bytes
from tests.support.prometheus import sample

QUEUE_SIZE, BATCH_SIZE = 4, 2
CLIENTS, ROUNDS = 16, 2  # 16 clients against room for 6: most of every wave is refused
REQUEST_TIMEOUT_S, BURST_TIMEOUT_S = 60, 180
PROBE_REQUESTS = 4


async def burst(url: str, data: bytes) -> list[httpx.Response]:
    """CLIENTS clients, each sending ROUNDS requests back to back; fails if any request hangs."""
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S,
                                 limits=httpx.Limits(max_connections=CLIENTS)) as client:
        async def one_client() -> list[httpx.Response]:
            return [await client.post("/segment", content=data, headers={"Content-Type": "image/png"})
                    for _ in range(ROUNDS)]

        waves = await asyncio.wait_for(asyncio.gather(*(one_client() for _ in range(CLIENTS))), BURST_TIMEOUT_S)
    return [response for wave in waves for response in wave]


def sequential_throughput(client: httpx.Client, data: bytes) -> float:
    started = time.perf_counter()
    for _ in range(PROBE_REQUESTS):
        assert client.post("/segment", content=data, headers={"Content-Type": "image/png"}).status_code == 200
    return PROBE_REQUESTS / (time.perf_counter() - started)


class PeakMemory:
    """Samples the server tree's resident memory every 20 ms while it is entered."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, resident_bytes(self.pid))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.usefixtures("requires_procfs")
def test_overload_gets_200_or_503_with_retry_after_memory_stays_bounded_and_throughput_recovers(
        service_factory, camvid_image):
    server = service_factory(env={"SEG_BATCHING__MAX_QUEUE_SIZE": str(QUEUE_SIZE),
                                  "SEG_BATCHING__MAX_BATCH_SIZE": str(BATCH_SIZE),
                                  "SEG_BATCHING__MAX_DELAY_MS": "5"})
    data = camvid_image.read_bytes()
    with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT_S) as client:
        before = sequential_throughput(client, data)
        resident_before = resident_bytes(server.process.pid)
        peaks, statuses = [], []
        for _ in range(2):
            with PeakMemory(server.process.pid) as memory:
                responses = asyncio.run(burst(server.url, data))
            peaks.append(memory.peak)
            statuses += [response.status_code for response in responses]
            for response in responses:
                assert response.status_code in (200, 503), response.text
                if response.status_code == 503:
                    assert int(response.headers["Retry-After"]) >= 1
                    assert response.json()["error"]["code"] == "queue_full"
        after = max(sequential_throughput(client, data) for _ in range(2))  # best of two: other jobs add noise
        model = client.get("/v1/models").json()["default"]
        metrics = client.get("/metrics").text
        assert client.get("/readyz").status_code == 200

    assert len(statuses) == 2 * CLIENTS * ROUNDS
    assert statuses.count(503) > 0 and statuses.count(200) >= 2 * ROUNDS, statuses
    # Bounded: the queue caps what a burst can hold, so the second burst peaks no higher than the first
    # (5 % slack for allocator noise), and neither holds more than 256 MiB beyond the idle server.
    assert peaks[1] <= peaks[0] * 1.05, f"peak resident memory grew from {peaks[0]} to {peaks[1]} bytes"
    assert max(peaks) - resident_before < 256 * 2**20, f"{resident_before} -> {peaks}"
    assert after >= 0.5 * before, f"throughput {after:.1f}/s after the bursts vs {before:.1f}/s before"
    assert sample(metrics, "seg_queue_depth", model=model) == 0
    assert sample(metrics, "seg_http_requests_in_flight") == 1  # this scrape
    print(f"overload: {statuses.count(200)} x 200, {statuses.count(503)} x 503; throughput {before:.1f} -> "
          f"{after:.1f}/s; resident {resident_before / 2**20:.0f} MiB idle, peaks {[p // 2**20 for p in peaks]} MiB")
